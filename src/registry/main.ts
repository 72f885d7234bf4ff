/**
 * registry: the process entry. Registers itself, serves registry.sock, and
 * serves the supervisor's register/deregister requests on its stdin pipe
 * through the same request path, as the supervisor (the pipe is the
 * credential: only the supervisor holds it).
 * @module
 */

import { parseLayoutArgs, socketPath } from "../runtime/config.ts";
import type { Capability } from "../token/claims.ts";
import { runMain, runService } from "../node/service.ts";
import { Registry, SUPERVISOR } from "./service.ts";

await runMain("registry", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, { supervised: { type: "boolean" } });
  let registry: Registry | undefined;
  const running = await runService({
    service: "registry",
    layout,
    supervised: options.supervised === true,
    methods: (_trust, audit) => {
      registry = new Registry(audit);
      registry.register({
        service: "registry",
        endpoint: `unix://${socketPath(layout, "registry")}`,
        api_v: 1,
      }, SUPERVISOR);
      return registry.methods();
    },
    // The registry's handlers take an Owner (a Capability or SUPERVISOR, see
    // Registry.register), and the pipe's requests run as SUPERVISOR.
    pipePrincipal: SUPERVISOR as unknown as Capability,
  });
  running.trust.onRevoked((ids) => registry!.dropRevoked(ids));
});
