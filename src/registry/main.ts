/**
 * registry: the process entry. Registers itself, serves registry.sock, and
 * serves the supervisor's register/deregister requests on its stdin pipe
 * through the same request path, as the supervisor (the pipe is the
 * credential: only the supervisor holds it).
 * @module
 */

import { socketPath } from "../runtime/config.ts";
import { parseLayoutArgs } from "../runtime/layout_args.ts";
import type { Capability } from "../token/claims.ts";
import { runMain, runService, SUPERVISED_OPTIONS } from "../node/service.ts";
import { type ClusterView, Registry, SUPERVISOR } from "./service.ts";
import type { RegistryRecord, RegistryStore } from "../sources/registry_store.ts";

/**
 * Cluster mode: the table on etcd (loaded only then). A service the
 * supervisor runs that listens on tcp:// (the layout's `listen`) is published
 * with that endpoint besides its socket.
 */
async function clusterStore(
  layout: ReturnType<typeof parseLayoutArgs>["layout"],
): Promise<{ store: RegistryStore; cluster: ClusterView; close(): Promise<void> } | undefined> {
  if (!layout.cluster) return undefined;
  const { etcdHttp } = await import("../sources/cluster.ts");
  const { EtcdRegistryStore } = await import("../sources/etcd_registry_store.ts");
  const listen = layout.listen as Record<string, string | undefined> | undefined;
  const endpointsOf = (r: RegistryRecord) => {
    const tcp = r.owner === SUPERVISOR.capId ? listen?.[r.service] : undefined;
    return tcp && tcp !== r.endpoint ? [r.endpoint, tcp] : [r.endpoint];
  };
  const store = new EtcdRegistryStore({
    client: etcdHttp(layout),
    cluster: layout.cluster.name,
    node: layout.nodeId,
    endpointsOf,
  });
  await store.start();
  const cluster = {
    node: layout.nodeId,
    entries: () => store.cluster(),
    endpointsOf,
    readAt: () => store.lastRead,
  };
  return { store, cluster, close: () => store.close() };
}

await runMain("registry", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, SUPERVISED_OPTIONS);
  let registry: Registry | undefined;
  const onEtcd = await clusterStore(layout);
  const running = await runService({
    service: "registry",
    layout,
    supervised: options.supervised === true,
    held: options.held === true,
    light: true,
    methods: (_trust, audit) => {
      registry = new Registry(audit, onEtcd ?? {});
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
    // Revoking the lease takes this node's rows out of every node's view at once.
    onStop: () => onEtcd?.close(),
  });
  running.trust.onRevoked((ids) => registry!.dropRevoked(ids), () => registry!.holdsGranted());
});
