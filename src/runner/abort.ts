// A request's "went away" flag, with its AbortSignal made only when someone asks for it:
// an AbortController costs more than the rest of a small request, and few apps look at it.

export class RequestAbort {
  private controller: AbortController | undefined;
  private flag = false;

  get aborted(): boolean {
    return this.flag;
  }

  /** environ['tsgi.signal']: created on first access, already aborted if the request was. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.flag) this.controller.abort();
    }
    return this.controller.signal;
  }

  abort(): void {
    if (this.flag) return;
    this.flag = true;
    this.controller?.abort();
  }
}

/** What the runner and environ accept: a plain AbortSignal, or a RequestAbort. */
export type AbortFlag = AbortSignal | RequestAbort;

/** A RequestAbort set when `flag` is, and that can also be set on its own (--timeout). */
export function followFlag(flag: AbortFlag): RequestAbort {
  const own = new RequestAbort();
  if (flag.aborted) own.abort();
  else signalOf(flag).addEventListener('abort', () => own.abort(), { once: true });
  return own;
}

export function signalOf(flag: AbortFlag): AbortSignal {
  return flag instanceof RequestAbort ? flag.signal : flag;
}
