/* eng_store_sqlite.c - the embedded store (work in progress). */
#include "eng_store_sqlite.h"

#include <stdio.h>

eng_store_t *eng_store_sqlite_open(const char *spec, const eng_store_cfg_t *cfg, char *err,
                                   size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "--ledger '%.64s': the sqlite store is not built yet", spec);
    return NULL;
}
