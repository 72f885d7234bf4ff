/**
 * registry: the process entry. Registers itself, takes the supervisor's
 * register/deregister frames on its stdin pipe, and serves registry.sock.
 * @module
 */

import { parseRequest } from "../wire/envelope.ts";
import { parseLayoutArgs, socketPath } from "../runtime/config.ts";
import { logger } from "../runtime/log.ts";
import { runMain, runService } from "../node/service.ts";
import { Registry, SUPERVISOR } from "./service.ts";

await runMain("registry", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, { supervised: { type: "boolean" } });
  const log = logger("registry");
  let registry: Registry | undefined;
  /** A frame from the supervisor's pipe: {method: registry.register | registry.deregister}. */
  const control = (body: Uint8Array) => {
    try {
      const req = parseRequest(body);
      const p = req.params ?? {};
      if (req.method === "registry.register") {
        registry!.register({
          service: String(p.service),
          endpoint: String(p.endpoint),
          api_v: Number(p.api_v ?? 1),
        }, SUPERVISOR);
      } else if (req.method === "registry.deregister") {
        registry!.deregister(String(p.service), SUPERVISOR);
      }
    } catch (err) {
      log.warn("bad control frame from the supervisor", { error: String(err) });
    }
  };
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
    onControlFrame: control,
  });
  running.trust.onRevoked((ids) => registry!.dropRevoked(ids));
});
