// sidecar_openai.mjs - drives hpp-sidecar (proxy mode) with the official
// `openai` npm client, non-streaming and streaming, and checks what the
// upstream stand-in saw. Prints "ok NAME" / "not ok NAME: why" per check;
// exits 1 when any failed. Env: SIDECAR_URL (base URL with /v1), STUB_URL.
import OpenAI from 'openai';

const sidecar = process.env.SIDECAR_URL;
const stub = process.env.STUB_URL;
let failures = 0;
const check = (name, cond, why) => {
    if (cond) {
        console.log(`ok ${name}`);
    } else {
        failures++;
        console.log(`not ok ${name}: ${why}`);
    }
};
const seen = async () => (await fetch(`${stub}/_requests`)).json();
const control = (body) => fetch(`${stub}/_control`, { method: 'POST', body: JSON.stringify(body) });

const client = new OpenAI({ baseURL: sidecar, apiKey: 'sk-openai-client', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Summarise the plot of Hamlet in one sentence.' }];

try {
    await control({ reset: true });
    // Non-streaming, with the raw response to read the header.
    const { data, response } = await client.chat.completions
        .create({ model: 'hpprouter/auto', messages, max_tokens: 50, hpp: { task: 'writing' } })
        .withResponse();
    const resolved = response.headers.get('x-hpp-router-resolved-model');
    check('non-stream: resolved-model header', resolved && resolved.includes('/'), `header ${resolved}`);
    check('non-stream: completion from the upstream', data.model === resolved &&
          data.choices[0].message.content === `echo ${resolved}`, JSON.stringify(data));
    let reqs = await seen();
    const last = reqs[reqs.length - 1];
    check('non-stream: upstream saw the resolved model', last.body.model === resolved, last.body.model);
    check('non-stream: hpp object stripped', !('hpp' in last.body), JSON.stringify(last.body));
    check('non-stream: API key passed through', last.headers.authorization === 'Bearer sk-openai-client',
          last.headers.authorization);

    // Streaming: chunks as the SDK parses them, header from the raw response.
    const { data: stream, response: sresp } = await client.chat.completions
        .create({ model: 'hpprouter/auto', messages, stream: true })
        .withResponse();
    const smodel = sresp.headers.get('x-hpp-router-resolved-model');
    let text = '';
    let chunks = 0;
    let usage = null;
    for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
        usage = chunk.usage ?? usage;
    }
    check('stream: resolved-model header', smodel && smodel.includes('/'), `header ${smodel}`);
    // Four chunks, and the usage chunk the sidecar asked for (no choices:
    // the SDK passes it on and the text is unchanged).
    check('stream: every chunk parsed', chunks === 5 && text === `echo ${smodel}`, `${chunks} chunks, "${text}"`);
    check('stream: the last chunk is the usage', usage && usage.completion_tokens === 7, JSON.stringify(usage));
    reqs = await seen();
    check('stream: upstream saw stream=true and the model', reqs[reqs.length - 1].body.stream === true &&
          reqs[reqs.length - 1].body.model === smodel, JSON.stringify(reqs[reqs.length - 1].body));

    // An explicit model is validated and passed on.
    const { response: eresp } = await client.chat.completions
        .create({ model: 'openai/gpt-4o', messages }).withResponse();
    check('explicit model kept', eresp.headers.get('x-hpp-router-resolved-model') === 'openai/gpt-4o',
          eresp.headers.get('x-hpp-router-resolved-model'));

    // Errors surface as the SDK's typed errors with the OpenAI error body.
    try {
        await client.chat.completions.create({ model: 'nope/unknown', messages });
        check('unknown model rejected', false, 'no error thrown');
    } catch (e) {
        check('unknown model: NotFoundError 404', e instanceof OpenAI.NotFoundError && e.status === 404,
              `${e.constructor.name} ${e.status}`);
        check('unknown model: error code', e.code === 'unknown_model', `code ${e.code}`);
    }
    try {
        await client.chat.completions.create({ model: 'hpprouter/auto', messages: 'not a list' });
        check('bad request rejected', false, 'no error thrown');
    } catch (e) {
        check('bad request: BadRequestError 400', e instanceof OpenAI.BadRequestError && e.status === 400,
              `${e.constructor.name} ${e.status}`);
        check('bad request: param', e.param === 'messages', `param ${e.param}`);
    }

    // Model listing through the SDK.
    const models = [];
    for await (const m of client.models.list()) {
        models.push(m);
    }
    check('models.list: virtual model first', models[0]?.id === 'hpprouter/auto', models[0]?.id);
    check('models.list: catalog models with pricing', models.length > 3 &&
          models.slice(1).every((m) => typeof m.pricing?.input === 'number' &&
                                       typeof m.pricing?.output === 'number' &&
                                       'cache_read' in m.pricing && 'cache_write' in m.pricing),
          `${models.length} models`);
    const one = await client.models.retrieve('openai/gpt-4o');
    check('models.retrieve: one model', one?.id === 'openai/gpt-4o', JSON.stringify(one));
} catch (e) {
    failures++;
    console.log(`not ok unexpected error: ${e?.stack ?? e}`);
}
process.exit(failures ? 1 : 0);
