// clients.mjs - the npm packages `ollama` (ollama-js) and `openai`, used as
// any application would use them, against AutoBot's llm role.
// Usage: node clients.mjs BASE_URL TOKEN MODEL
// Prints one line per check and exits non-zero on the first failure.
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const [base, token, model] = process.argv.slice(2);
if (!base || !token || !model) {
  console.error('usage: node clients.mjs BASE_URL TOKEN MODEL');
  process.exit(64);
}

function check(cond, what) {
  if (!cond) {
    console.error('FAIL ' + what);
    process.exit(1);
  }
  console.log('ok ' + what);
}

const ollama = new Ollama({ host: base, headers: { Authorization: 'Bearer ' + token } });

const tags = await ollama.list();
check(tags.models.some((m) => m.name === model), 'ollama list shows ' + model);

const gen = await ollama.generate({ model, prompt: 'Once upon a time', options: { temperature: 0, num_predict: 24 } });
check(gen.done && gen.response.length > 0 && gen.eval_count > 0, 'ollama generate: ' + JSON.stringify(gen.response));

let streamed = '';
let parts = 0;
for await (const part of await ollama.generate({ model, prompt: 'Once upon a time', stream: true, options: { temperature: 0, num_predict: 24 } })) {
  streamed += part.response;
  parts++;
}
check(parts > 2 && streamed === gen.response, 'ollama generate stream (' + parts + ' parts) equals the non-streamed text');

const chat = await ollama.chat({ model, messages: [{ role: 'user', content: 'Tell me a story' }], options: { temperature: 0, num_predict: 16 } });
check(chat.message.role === 'assistant' && chat.message.content.length > 0, 'ollama chat');

let chatParts = 0;
for await (const part of await ollama.chat({ model, messages: [{ role: 'user', content: 'Hi' }], stream: true, options: { num_predict: 8, seed: 7 } })) {
  chatParts++;
  if (part.done) check(part.eval_count > 0, 'ollama chat stream final stats');
}
check(chatParts > 1, 'ollama chat stream');

const emb = await ollama.embed({ model, input: ['a cat', 'a dog'] });
const norm = Math.sqrt(emb.embeddings[0].reduce((s, x) => s + x * x, 0));
check(emb.embeddings.length === 2 && Math.abs(norm - 1) < 1e-3, 'ollama embed (2 vectors of ' + emb.embeddings[0].length + ', unit length)');

const show = await ollama.show({ model });
check(show.details && show.details.family, 'ollama show: family ' + show.details.family);

const ps = await ollama.ps();
check(ps.models.some((m) => m.name === model), 'ollama ps lists the loaded model');

const openai = new OpenAI({ baseURL: base + '/v1', apiKey: token });
const models = await openai.models.list();
check(models.data.some((m) => m.id === model), 'openai models.list');

const cc = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 16, temperature: 0 });
check(cc.choices[0].message.content.length > 0 && cc.usage.completion_tokens > 0, 'openai chat.completions');

let text = '';
let chunks = 0;
const stream = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 16, temperature: 0, stream: true });
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content || '';
  chunks++;
}
check(chunks > 2 && text === cc.choices[0].message.content, 'openai chat stream (' + chunks + ' chunks) equals the non-streamed text');

const comp = await openai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
check(comp.choices[0].text.length > 0, 'openai completions');

const oe = await openai.embeddings.create({ model, input: 'hello' });
check(oe.data[0].embedding.length > 0, 'openai embeddings');

let failed = false;
try {
  await openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
} catch (e) {
  failed = e.status === 404;
}
check(failed, 'openai: unknown model is a 404 error');
console.log('all client checks passed');
