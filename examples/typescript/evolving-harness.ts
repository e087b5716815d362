// A harness that evolves its own policy from its history.
//
//     exo --harness typescript agent create "TS Evolving" \
//       --module examples/typescript/evolving-harness.ts --model gpt-5.4
//
// Its policy lives in the log, as `harness.evolving.policy` events: at the
// start of each turn it reads the newest one, reads the events recorded
// since (`ctx.events({ after })`), and learns from them:
//
// - a tool the user denied twice is no longer offered;
// - a tool that failed three times gets a warning in the instructions;
// - answers that ran long ask for shorter ones.
//
// When the history it would send grows past a threshold, it asks the model
// (unrecorded) for a summary and records it as `exo.compaction`, which
// every executor honours: the built-in one, after a swap, starts from the
// summary too. Then it runs the same loop as basic-harness.ts.

import { defineHarness, isEvent, itemsOf, resultItem, textOf, type Event, type ModelItem, type TurnContext } from "@exo/harness";

/** History larger than this (characters of text) is compacted. */
export const COMPACT_AT = 24_000;
const DROP_AFTER_DENIALS = 2;
const WARN_AFTER_FAILURES = 3;
const LONG_ANSWER = 1_500;

export interface Policy {
  /** The last event this policy has learnt from. */
  cursor: string | null;
  failures: Record<string, number>;
  denials: Record<string, number>;
  answers: number;
  answerChars: number;
}

const EMPTY: Policy = { cursor: null, failures: {}, denials: {}, answers: 0, answerChars: 0 };

export default defineHarness({
  name: "evolving",
  async runTurn(ctx) {
    const policy = await learn(ctx, await currentPolicy(ctx));
    let { items } = await ctx.history();
    if (size(items) > COMPACT_AT) items = await compact(ctx, items);

    const instructions = [ctx.instructions, ...lessons(policy)].join("\n\n");
    const tools = ctx.tools.specs().filter((tool) => (policy.denials[tool.name] ?? 0) < DROP_AFTER_DENIALS);
    let text = "";
    while (ctx.model.rounds < ctx.maxRounds) {
      const answer = await ctx.model.complete({ items, tools, instructions });
      if (answer.text !== "") text = answer.text;
      items.push(...itemsOf(answer));
      if (answer.tool_calls.length === 0 || answer.stop === "cancelled") return text;
      for (const call of answer.tool_calls) items.push(resultItem(await ctx.tools.run(call)));
    }
    return { status: "max_rounds", text };
  },
});

/** The newest policy this harness recorded, or an empty one. */
async function currentPolicy(ctx: TurnContext): Promise<Policy> {
  for await (const event of ctx.events({ desc: true, kind: "custom", limit: 50 })) {
    if (isEvent(event, "custom") && event.type === "harness.evolving.policy") return event.payload as Policy;
  }
  return EMPTY;
}

/** The policy updated with every event recorded after its cursor; a
 * changed policy is recorded. (After a rewind the cursor may be gone from
 * the history: then it learns again from the start.) */
async function learn(ctx: TurnContext, old: Policy): Promise<Policy> {
  const policy: Policy = structuredClone(old);
  const tools = new Map<string, string>(); // call id → tool name
  let events: AsyncIterable<Event> = ctx.events(policy.cursor === null ? {} : { after: policy.cursor });
  try {
    for await (const event of events) note(policy, tools, event);
  } catch (err) {
    if (policy.cursor === null || !/not found/i.test(String(err))) throw err;
    Object.assign(policy, structuredClone(EMPTY));
    events = ctx.events();
    for await (const event of events) note(policy, tools, event);
  }
  if (old === EMPTY || JSON.stringify(policy) !== JSON.stringify(old)) await ctx.record("policy", policy);
  return policy;
}

function note(policy: Policy, tools: Map<string, string>, event: Event): void {
  policy.cursor = event.id;
  if (isEvent(event, "tool_call")) {
    tools.set(event.call_id, event.name);
  } else if (isEvent(event, "tool_result") && event.is_error === true) {
    const tool = tools.get(event.call_id) ?? "unknown";
    const denied = JSON.stringify(event.output).includes("denied:");
    const counts = denied ? policy.denials : policy.failures;
    counts[tool] = (counts[tool] ?? 0) + 1;
  } else if (isEvent(event, "message") && event.role === "assistant") {
    policy.answers += 1;
    policy.answerChars += textOf(event.content).length;
  }
}

/** What the policy says, as lines for the system prompt. */
export function lessons(policy: Policy): string[] {
  const lines: string[] = [];
  for (const [tool, count] of Object.entries(policy.denials)) {
    if (count >= DROP_AFTER_DENIALS) lines.push(`The user denied ${tool} ${String(count)} times: it is no longer offered; do without it.`);
  }
  for (const [tool, count] of Object.entries(policy.failures)) {
    if (count >= WARN_AFTER_FAILURES) lines.push(`${tool} failed ${String(count)} times in this conversation: read its errors and check the arguments before calling it again.`);
  }
  if (policy.answers > 0 && policy.answerChars / policy.answers > LONG_ANSWER) {
    lines.push("Your answers here have been long: keep them short.");
  }
  return lines.length === 0 ? [] : [`Learnt from this conversation so far:\n- ${lines.join("\n- ")}`];
}

/** Characters of text in the items. */
function size(items: ModelItem[]): number {
  let chars = 0;
  for (const item of items) {
    if (item.type === "message") chars += textOf(item.content).length;
    else if (item.type === "tool_result") chars += item.output.length;
    else chars += JSON.stringify(item.arguments).length;
  }
  return chars;
}

/** Summarises everything before this turn's message (unrecorded), records
 * the summary, with the message, as `exo.compaction`, and returns the
 * items as exo will show them from now on. */
async function compact(ctx: TurnContext, items: ModelItem[]): Promise<ModelItem[]> {
  const earlier = items.slice(0, -1);
  const answer = await ctx.model.complete({
    items: [...earlier, { type: "message", role: "user", content: "Summarise this conversation for yourself: the task, what was done, what was decided, what is left. Be complete but brief." }],
    record: false,
  });
  const summary = `${answer.text}\n\nThen the user wrote:\n\n${ctx.text}`;
  await ctx.record("exo.compaction", { summary });
  return [{ type: "message", role: "user", content: `A summary of the conversation so far:\n\n${summary}` }];
}
