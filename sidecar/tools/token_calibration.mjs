// token_calibration.mjs - builds the token calibration corpus and fits the
// sidecar's prompt token estimator against a real tokenizer.
//
// The sidecar cannot run a BPE tokenizer per request (it would need the 200k
// token vocabulary and would cost more than the whole decision), so it counts
// cheap features of the text in one pass (see sidecar/oai_tokens.c) and
// combines them linearly. This script measures how good that is:
//
//   node token_calibration.mjs build ROUTELLM_DIR REPO_ROOT > corpus.jsonl
//       builds chat samples from RouteLLM's MT-Bench / GSM8K / MMLU files,
//       some of this repository's sources and a few hand-written texts, and
//       records each sample's exact token count (o200k_base, GPT-4o chat
//       format) as computed by the npm package gpt-tokenizer.
//   node token_calibration.mjs fit corpus.jsonl
//       fits the coefficients by least squares on relative error over every
//       message string and prints them with the error of the whole-chat
//       estimate (mean, p50, p90, max absolute relative error).
//
// Requires `npm install gpt-tokenizer` next to it (or NODE_PATH); it runs
// offline. The features below must stay identical to oai_tokens.c.
import fs from 'node:fs';
import path from 'node:path';

// ---------------------------------------------------------------- features

function isCjk(cp) {
    return (cp >= 0x2e80 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7af) ||
        (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xff00 && cp <= 0xffef) ||
        (cp >= 0x20000 && cp <= 0x2fa1f);
}

const LONG_RUN = 8; // letters beyond this many in a word count as extra

// Counts the features of one string; the same pass as oai_tokens.c.
export function features(s) {
    const f = { words: 0, long: 0, digits: 0, punct: 0, space: 0, cjk: 0, other: 0 };
    const buf = Buffer.from(s, 'utf8');
    let run = 0;      // letters in the current word
    let drun = 0;     // digits in the current number
    let wrun = 0;     // whitespace bytes in the current run
    let wsp = false;  // the whitespace run is a single ' '
    const endWord = () => {
        if (run > 0) { f.words++; if (run > LONG_RUN) { f.long += run - LONG_RUN; } run = 0; }
    };
    const endNum = () => { if (drun > 0) { f.digits += Math.ceil(drun / 3); drun = 0; } };
    const endSpace = () => { if (wrun > 0) { if (!(wrun === 1 && wsp)) { f.space++; } wrun = 0; } };
    for (let i = 0; i < buf.length;) {
        const b = buf[i];
        let cp, n;
        if (b < 0x80) { cp = b; n = 1; }
        else if (b >= 0xf0) { cp = ((b & 7) << 18) | ((buf[i + 1] & 63) << 12) | ((buf[i + 2] & 63) << 6) | (buf[i + 3] & 63); n = 4; }
        else if (b >= 0xe0) { cp = ((b & 15) << 12) | ((buf[i + 1] & 63) << 6) | (buf[i + 2] & 63); n = 3; }
        else { cp = ((b & 31) << 6) | (buf[i + 1] & 63); n = 2; }
        i += n;
        const letter = (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
        const digit = cp >= 0x30 && cp <= 0x39;
        const white = cp === 0x20 || cp === 0x0a || cp === 0x09 || cp === 0x0d;
        if (!white) { endSpace(); }
        if (!digit) { endNum(); }
        if (letter) { run++; continue; }
        if (cp >= 0x80 && !isCjk(cp)) { f.other++; run++; continue; }
        endWord();
        if (digit) { drun++; }
        else if (white) { if (wrun === 0) { wsp = cp === 0x20; } wrun++; }
        else if (cp >= 0x80) { f.cjk++; }
        else { f.punct++; }
    }
    endWord(); endNum(); endSpace();
    return f;
}

const KEYS = ['words', 'long', 'digits', 'punct', 'space', 'cjk', 'other'];

// ---------------------------------------------------------------- build

function csvRows(text) { // RFC 4180 rows
    const rows = []; let row = []; let cell = ''; let q = false;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (q) {
            if (c === '"') { if (text[i + 1] === '"') { cell += '"'; i++; } else { q = false; } }
            else { cell += c; }
        } else if (c === '"') { q = true; }
        else if (c === ',') { row.push(cell); cell = ''; }
        else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; }
        else if (c !== '\r') { cell += c; }
    }
    if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
    return rows;
}

const HANDWRITTEN = [
    ['de', 'Bitte fasse den folgenden Vertrag in drei Sätzen zusammen und nenne die wichtigsten Kündigungsfristen. Die Zusammenfassung soll für Kunden ohne juristische Vorkenntnisse verständlich sein.'],
    ['fr', "Peux-tu m'expliquer la différence entre une fonction récursive et une fonction itérative ? Donne un exemple en Python et indique laquelle consomme le moins de mémoire."],
    ['es', 'Escribe un correo electrónico breve y cordial para pedir a un proveedor que adelante la entrega del pedido número 4521 a la próxima semana.'],
    ['ru', 'Объясни, пожалуйста, простыми словами, как работает протокол TCP и чем он отличается от UDP. Приведи два примера приложений для каждого.'],
    ['zh', '请用简单的语言解释什么是机器学习，并举三个日常生活中的例子。回答不要超过两百字。'],
    ['ja', '次の文章を丁寧な日本語に書き直してください。明日の会議は午後三時からに変更になりました。資料は事前に確認しておいてください。'],
    ['ko', '다음 주 월요일까지 프로젝트 보고서를 제출해야 합니다. 보고서에 포함해야 할 주요 항목을 정리해 주세요.'],
    ['pt', 'Qual é a melhor maneira de aprender a programar em C? Sugira uma sequência de estudos para os primeiros três meses.'],
    ['mixed', 'Translate to English: 「今日は天気がいいですね」 and explain the grammar of the particle は vs が with 2 examples.'],
    ['emoji', 'Write a tweet announcing our launch 🚀🎉 — keep it under 280 characters, add #opensource and #AI, and end with 👉 https://example.com/launch'],
];

function buildCorpus(routellm, repo) {
    const samples = [];
    const add = (id, source, messages) => samples.push({ id, source, messages });
    const qs = fs.readFileSync(path.join(routellm, 'mt_bench/question.jsonl'), 'utf8')
        .trim().split('\n').map((l) => JSON.parse(l));
    for (const q of qs) {
        add(`mtbench-${q.question_id}`, 'routellm/mt_bench/question.jsonl',
            [{ role: 'system', content: 'You are a helpful assistant.' },
                { role: 'user', content: q.turns[0] }]);
    }
    const judg = fs.readFileSync(path.join(routellm, 'mt_bench/judgements.jsonl'), 'utf8')
        .trim().split('\n').map((l) => JSON.parse(l));
    let nj = 0;
    for (const j of judg) {
        if (j.turn !== 1 || j.model !== 'gpt-4-1106-preview' || nj >= 24 || j.question_id % 3) { continue; }
        const m = /### User:\n([\s\S]*?)\n\n### Assistant A:\n([\s\S]*?)\n\n<\|The End/.exec(j.user_prompt);
        if (!m) { continue; }
        nj++;
        add(`mtbench-conv-${j.question_id}`, 'routellm/mt_bench/judgements.jsonl',
            [{ role: 'user', content: m[1] }, { role: 'assistant', content: m[2] },
                { role: 'user', content: 'Thanks. Now make it shorter.' }]);
    }
    const gsm = csvRows(fs.readFileSync(path.join(routellm, 'gsm8k/gsm8k_responses.csv'), 'utf8'));
    for (let i = 1; i <= 30 && i < gsm.length; i++) {
        add(`gsm8k-${i}`, 'routellm/gsm8k/gsm8k_responses.csv',
            [{ role: 'user', content: gsm[i][0] }, { role: 'assistant', content: gsm[i][4] }]);
    }
    for (const subj of ['philosophy', 'high_school_physics', 'college_computer_science', 'nutrition']) {
        const rows = csvRows(fs.readFileSync(path.join(routellm, `mmlu_responses/mmlu_${subj}.csv`), 'utf8'));
        for (let i = 1; i <= 6 && i < rows.length; i++) {
            add(`mmlu-${subj}-${i}`, `routellm/mmlu_responses/mmlu_${subj}.csv`,
                [{ role: 'user', content: rows[i][0] }]);
        }
    }
    // Code: this repository's own sources, in chunks of about 2 KB.
    for (const rel of ['engine/eng_common.c', 'engine/eng_request.h', 'tests/run.sh', 'Makefile']) {
        const text = fs.readFileSync(path.join(repo, rel), 'utf8');
        for (let off = 0, k = 0; off < text.length && k < 3; off += 2048, k++) {
            add(`code-${rel}-${k}`, `hpprouter/${rel}`,
                [{ role: 'system', content: 'You review code. Point out bugs.' },
                    { role: 'user', content: 'Review this:\n```\n' + text.slice(off, off + 2048) + '\n```' }]);
        }
    }
    for (const [lang, text] of HANDWRITTEN) {
        add(`lang-${lang}`, 'handwritten', [{ role: 'user', content: text }]);
    }
    // Two long prompts (~16 KB and ~32 KB): many GSM8K answers concatenated.
    for (const size of [16384, 32768]) {
        let text = '';
        for (let i = 100; text.length < size && i < gsm.length; i++) { text += gsm[i][0] + '\n' + gsm[i][4] + '\n\n'; }
        add(`long-${size}`, 'routellm/gsm8k/gsm8k_responses.csv',
            [{ role: 'user', content: 'Check these solutions:\n\n' + text }]);
    }
    return samples;
}

// ---------------------------------------------------------------- fit

function solve(A, b) { // Gaussian elimination with partial pivoting
    const n = b.length;
    for (let c = 0; c < n; c++) {
        let p = c;
        for (let r = c + 1; r < n; r++) { if (Math.abs(A[r][c]) > Math.abs(A[p][c])) { p = r; } }
        [A[c], A[p]] = [A[p], A[c]]; [b[c], b[p]] = [b[p], b[c]];
        for (let r = c + 1; r < n; r++) {
            const k = A[r][c] / A[c][c];
            for (let j = c; j < n; j++) { A[r][j] -= k * A[c][j]; }
            b[r] -= k * b[c];
        }
    }
    const x = new Array(n).fill(0);
    for (let r = n - 1; r >= 0; r--) {
        let s = b[r];
        for (let j = r + 1; j < n; j++) { s -= A[r][j] * x[j]; }
        x[r] = s / A[r][r];
    }
    return x;
}

async function fit(file) {
    const { encode, encodeChat } = await import('gpt-tokenizer/model/gpt-4o');
    const samples = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // Per string: minimise sum ((est - real) / real)^2, a ridge of 1e-6 keeps rare features sane.
    const n = KEYS.length;
    const A = Array.from({ length: n }, () => new Array(n).fill(0));
    const b = new Array(n).fill(0);
    let overhead = null;
    for (const s of samples) {
        let sum = 0;
        for (const m of s.messages) {
            const real = encode(m.content).length;
            sum += real;
            if (real === 0) { continue; }
            const f = features(m.content);
            const w = 1 / (real * real);
            for (let i = 0; i < n; i++) {
                for (let j = 0; j < n; j++) { A[i][j] += w * f[KEYS[i]] * f[KEYS[j]]; }
                b[i] += w * f[KEYS[i]] * real;
            }
        }
        const chat = encodeChat(s.messages).length;
        const ov = (chat - sum - 3) / s.messages.length;
        if (overhead === null) { overhead = ov; }
        if (ov !== overhead) { console.error(`note: ${s.id} per-message overhead ${ov}`); }
    }
    for (let i = 0; i < n; i++) { A[i][i] += 1e-6; }
    const x = solve(A, b);
    const milli = x.map((v) => Math.round(v * 1000));
    console.log('coefficients (thousandths of a token per feature):');
    KEYS.forEach((k, i) => console.log(`  ${k.padEnd(7)} ${milli[i]}`));
    console.log(`per-message overhead ${overhead}, reply priming 3`);
    const errs = [];
    for (const s of samples) {
        let est = 3;
        for (const m of s.messages) {
            const f = features(m.content);
            let t = 0;
            KEYS.forEach((k, i) => { t += milli[i] * f[k]; });
            est += overhead + Math.floor((t + 500) / 1000);
        }
        const real = encodeChat(s.messages).length;
        s.tokens = real;
        s.estimate = est;
        errs.push({ id: s.id, real, est, rel: Math.abs(est - real) / real });
    }
    errs.sort((p, q) => p.rel - q.rel);
    const pct = (p) => (100 * errs[Math.min(errs.length - 1, Math.floor(p * errs.length))].rel).toFixed(1);
    const mean = (100 * errs.reduce((a, e) => a + e.rel, 0) / errs.length).toFixed(1);
    console.log(`${errs.length} chats: mean |err| ${mean}%, p50 ${pct(0.5)}%, p90 ${pct(0.9)}%, max ${pct(1)}% (${errs[errs.length - 1].id})`);
    console.log('worst:');
    for (const e of errs.slice(-8)) { console.log(`  ${e.id}: real ${e.real}, estimate ${e.est}`); }
    if (process.argv[4] === '--write') {
        fs.writeFileSync(file, samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
    }
}

const [cmd, a, b] = process.argv.slice(2);
if (cmd === 'build' && a && b) {
    for (const s of buildCorpus(a, b)) { process.stdout.write(JSON.stringify(s) + '\n'); }
} else if (cmd === 'fit' && a) {
    await fit(a);
} else {
    console.error('usage: token_calibration.mjs build ROUTELLM_DIR REPO_ROOT > corpus.jsonl\n' +
        '       token_calibration.mjs fit corpus.jsonl [--write]  (--write stores the real counts)');
    process.exit(2);
}
