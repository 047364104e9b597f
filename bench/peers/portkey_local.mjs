// portkey_local.mjs - starts the Portkey gateway (npm @portkey-ai/gateway) for
// the benchmarks, bound to 127.0.0.1 only.
//
// The gateway's own entry (build/start-server.js) takes --port=N and --headless
// but listens on every interface. This wrapper patches net.Server#listen before
// loading it so that every listener binds 127.0.0.1, then prints
// "portkey: ready on 127.0.0.1:PORT" on stderr (the readiness line bench/run.sh
// waits for; --port=0 picks an ephemeral port).
// Usage: TRUSTED_CUSTOM_HOSTS=127.0.0.1 node bench/peers/portkey_local.mjs --port=0 --headless
// (TRUSTED_CUSTOM_HOSTS lets a config's custom_host point at the local upstream stand-in.)
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    const cb = args.find((a) => typeof a === 'function');
    let port = 0;
    if (typeof args[0] === 'object' && args[0] !== null) {
        port = args[0].port ?? 0;
    } else {
        port = Number(args[0]) || 0;
    }
    this.once('listening', () => {
        const a = this.address();
        process.stderr.write(`portkey: ready on ${a.address}:${a.port}\n`);
    });
    return listen.call(this, { port, host: '127.0.0.1' }, cb);
};

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => process.exit(0));
}

await import('./node_modules/@portkey-ai/gateway/build/start-server.js');
