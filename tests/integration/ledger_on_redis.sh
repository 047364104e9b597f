#!/usr/bin/env bash
# The ledger suite (ledger.sh) again, on the Redis store: the same checks,
# refusals, settlements and crash case must hold on both stores. ledger.sh
# starts its own redis-server on a unix socket in its temporary folder.
# Ends with "N passed, N failed, N skipped" (ledger.sh's).
set -u
cd "$(dirname "$0")/../.." || exit 2
if [ ! -f tests/integration/ledger.sh ]; then
    echo "SKIP ledger on redis: tests/integration/ledger.sh is not in this tree"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
LEDGER_STORE=redis exec bash tests/integration/ledger.sh
