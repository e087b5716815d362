// Module resolution hooks the runner registers when a harness module's
// directory cannot resolve `@exo/harness` itself (a module kept outside any
// package that depends on it): the bare specifier then resolves to the
// runner's own copy of this package.

import type { InitializeHook, ResolveHook } from "node:module";

const SUBPATHS: Record<string, string> = {
  "": "index.js",
  "/testing": "testing.js",
  "/protocol": "protocol.js",
};

let dist: string | undefined;

/** `data.dist`: the URL of the runner's dist directory, ending in `/`. */
export const initialize: InitializeHook<{ dist: string }> = (data) => {
  dist = data.dist;
};

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (dist !== undefined && (specifier === "@exo/harness" || specifier.startsWith("@exo/harness/"))) {
      const file = SUBPATHS[specifier.slice("@exo/harness".length)];
      if (file !== undefined) return { url: new URL(file, dist).href, format: "module", shortCircuit: true };
    }
    throw err;
  }
};
