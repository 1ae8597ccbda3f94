// bench/llm/llamacpp.mjs MODEL PROMPT_FILE THREADS N_PREDICT - one
// llama.cpp measurement: the same-run anchor of bench/llm/run.sh.
//
// llama.cpp runs as the prebuilt CPU library that the npm package
// node-llama-cpp ships (@node-llama-cpp/linux-x64: llama.cpp and ggml, one
// ggml-cpu build per x86 level, the best one for this CPU chosen by ggml at
// load time), installed by run.sh from the npm registry. This script drives
// it as `autobot run` is driven: load the model (mmap, no GPU), evaluate the
// prompt (BOS + the text as llama.cpp tokenizes it) as one batch, then
// N_PREDICT greedy tokens, one decode and one pick each. It calls the
// package's native context directly (initBatch/addToBatch/decodeBatch,
// sampleToken: internal names of node-llama-cpp 3.22, pinned by run.sh)
// rather than through its async token generator, whose scheduling adds
// about 0.3 ms a token here; what remains is one worker-thread round trip
// per decode and per pick (~0.7 ms a token in all on the 260K-parameter
// model, where llama.cpp's own work is ~0.1 ms: that row measures the
// binding more than llama.cpp).
//
// Two passes over the same prompt: the first (cold, as `autobot run` always
// is) gives the time to first token; the KV cache is then cleared and the
// second (warm: threads started, buffers allocated) gives the prompt and
// generation rates, which favours llama.cpp. One JSON line on stdout:
//   prompt_n, prompt_ms, gen_n, gen_ms   the warm pass: prompt evaluation
//                  plus the first pick, then N_PREDICT decodes and picks
//   prompt_cold_ms the cold pass's prompt evaluation and first pick (as
//                  `autobot run`'s prompt figure, which is always cold)
//   load_ms        loading the model and making the context
//   ttft_ms        load + the cold pass's prompt and first pick (Node's own
//                  start-up not included)
//   rss_base_kb    RSS before the model loads (Node and the library)
//   maxrss_kb      peak RSS at the end
//   cpu_variant    the libggml-cpu-*.so that was loaded
import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, promptFile, threadsArg, npredArg] = process.argv.slice(2);
if (!modelPath || !promptFile || !threadsArg || !npredArg) {
	console.error("usage: llamacpp.mjs MODEL PROMPT_FILE THREADS N_PREDICT");
	process.exit(2);
}
const threads = Number(threadsArg), npred = Number(npredArg);

function statusKb(field) {
	const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync("/proc/self/status", "utf8"));
	return m ? Number(m[1]) : null;
}

function cpuVariant() {
	const m = /libggml-cpu-([A-Za-z0-9_]+)\.so/.exec(fs.readFileSync("/proc/self/maps", "utf8"));
	return m ? m[1] : "unknown";
}

const llama = await getLlama({
	gpu: false,
	build: "never",
	skipDownload: true,
	maxThreads: 0, // the context's thread count is used as given
	logLevel: LlamaLogLevel.error,
});
const rssBase = statusKb("VmRSS");
const t0 = performance.now();
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ctx = await model.createContext({
	contextSize: 512,
	batchSize: 512,
	threads: {ideal: threads, min: threads},
	sequences: 1,
});
const seq = ctx.getSequence();
const t1 = performance.now();

const native = ctx._ctx, sid = seq._sequenceId;
const sampler = new llama._bindings.AddonSampler(model._model);
sampler.applyConfig(seq._resolveSamplerConfig({temperature: 0}));

const tokens = [model.tokens.bos, ...model.tokenize(fs.readFileSync(promptFile, "utf8"))];

// decodes toks at positions pos.. and picks the next token
async function step(toks, pos) {
	native.initBatch(toks.length);
	const li = native.addToBatch(sid, pos, Uint32Array.from(toks), Uint32Array.of(toks.length - 1));
	await native.decodeBatch();
	const tok = await native.sampleToken(li[0], sampler);
	if (typeof tok !== "number" || tok < 0)
		throw new Error("llama.cpp did not return a token");
	return tok;
}

// cold pass: time to first token
const tc = performance.now();
let tok = await step(tokens, 0);
const tCold = performance.now();
native.removeTokenCellsFromSequence(sid, 0, tokens.length + npred + 1);

// warm pass
const t2 = performance.now();
tok = await step(tokens, 0);
const t3 = performance.now();
for (let i = 0; i < npred; i++)
	tok = await step([tok], tokens.length + i);
const t4 = performance.now();

console.log(JSON.stringify({
	prompt_n: tokens.length,
	prompt_ms: t3 - t2,
	prompt_cold_ms: tCold - tc,
	gen_n: npred,
	gen_ms: t4 - t3,
	load_ms: t1 - t0,
	ttft_ms: tCold - t0,
	rss_base_kb: rssBase,
	maxrss_kb: statusKb("VmHWM"),
	cpu_variant: cpuVariant(),
	threads,
}));
sampler.dispose();
await ctx.dispose();
await model.dispose();
await llama.dispose();
