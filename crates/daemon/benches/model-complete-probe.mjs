// The harness benchmark's probe (crates/daemon/benches/harness.rs): times
// `ctx.model.complete` round trips from inside a runner.
//
// The turn's input is JSON written by the benchmark:
// {"calls": N, "request": {"items": [...], "instructions"?: "..."}}.
// The turn makes N unrecorded calls of that request (exo allows as many as
// the turn's max_rounds), times each with process.hrtime.bigint(), records
// the times as one `harness.probe.timings` event, {"ns": [...], "text"},
// where `text` is the last answer (the benchmark checks it), and returns
// nothing, so the turn records no assistant message.
//
// Plain JavaScript, so no TypeScript compiler runs when the runner loads
// it; it lives outside exo's pnpm workspace, so `@exo/harness` resolves to
// the runner's own copy.

import { defineHarness } from "@exo/harness";

export default defineHarness({
  name: "probe",
  async runTurn(ctx) {
    const { calls, request } = JSON.parse(ctx.text);
    const call = { ...request, record: false };
    const ns = [];
    let text = "";
    for (let i = 0; i < calls; i++) {
      const start = process.hrtime.bigint();
      const answer = await ctx.model.complete(call);
      ns.push(Number(process.hrtime.bigint() - start));
      text = answer.text;
    }
    await ctx.record("timings", { ns, text });
  },
});
