/**
 * etcd calls that end by their deadline. The etcd3 client gives a call's
 * deadline to its gRPC call only: a call made while the client's circuit
 * breaker for a member is half-open first waits for the breaker's trial call
 * to end, however long that one may take (tried with etcd stopped: a read
 * given 1.5 s answered after 4.0 s, behind a read given 4 s). Identity's
 * revoke and key rotation answered late that way (6.3 s and 3.1 s against 4
 * s and 1.5 s, docs/cluster.md). {@link byDeadline} settles by the deadline
 * at the latest; the call itself is left to end on its own.
 * @module
 */

/** How a call that had no answer by its deadline fails. */
export class EtcdDeadlineError extends Error {
  constructor(ms: number) {
    super(`etcd did not answer within the call's deadline (${ms} ms)`);
    this.name = "EtcdDeadlineError";
  }
}

/**
 * `call`, or an {@link EtcdDeadlineError} at `deadline` if it has not settled
 * by then (a later failure of `call` is not reported).
 */
export function byDeadline<T>(call: PromiseLike<T>, deadline: Date): Promise<T> {
  const ms = Math.max(0, deadline.getTime() - Date.now());
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EtcdDeadlineError(ms)), ms);
  });
  const settled = Promise.resolve(call);
  settled.catch(() => {}); // it may fail after the deadline: nobody waits for it then
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}
