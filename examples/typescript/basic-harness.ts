// A minimal coding agent as an exo harness: the built-in executor's loop,
// in TypeScript.
//
//     exo --harness typescript agent create "TS Basic" \
//       --module examples/typescript/basic-harness.ts --model gpt-5.4
//
// Each turn: take the history as exo shows it to a model (from the last
// compaction on, this turn's message included), call the model with exo's
// tools, run each tool call it makes, give it the results, and stop when it
// answers without calling a tool, or at the turn's round limit. exo records
// the model's answers, the calls and their results, so this file keeps no
// state of its own: a turn can be re-run, swapped to another executor, or
// killed halfway, and nothing is lost.

import { defineHarness, itemsOf, resultItem } from "@exo/harness";

export default defineHarness({
  name: "basic",
  async runTurn(ctx) {
    const { items } = await ctx.history();
    const tools = ctx.tools.specs();
    let text = "";
    while (ctx.model.rounds < ctx.maxRounds) {
      const answer = await ctx.model.complete({ items, tools });
      if (answer.text !== "") text = answer.text;
      items.push(...itemsOf(answer));
      if (answer.tool_calls.length === 0 || answer.stop === "cancelled") return text;
      for (const call of answer.tool_calls) {
        items.push(resultItem(await ctx.tools.run(call)));
      }
    }
    return { status: "max_rounds", text };
  },
});
