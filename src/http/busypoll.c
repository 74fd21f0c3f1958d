/* Adaptive busy polling for a worker's event loop: see busypoll.h. */
#include "http/busypoll.h"

_Thread_local uint64_t busypoll_events;

void busypoll_init(struct busypoll *bp, uint32_t limit_us) {
  bp->limit_ns = (uint64_t)limit_us * 1000u;
  bp->window_ns = 0;
}

void busypoll_adapt(struct busypoll *bp, uint64_t gap_ns) {
  if (gap_ns <= bp->limit_ns) {
    uint64_t w = bp->window_ns ? bp->window_ns * 2 : BUSYPOLL_GROW_START_NS;
    bp->window_ns = w < bp->limit_ns ? w : bp->limit_ns;
  } else {
    bp->window_ns /= 2;
    if (bp->window_ns < BUSYPOLL_GROW_START_NS)
      bp->window_ns = 0;
  }
}

/* Each uv_run(UV_RUN_NOWAIT) is one loop turn with a zero poll timeout:
 * spinning is taking turns until one handles an event, so libuv keeps
 * doing all the polling (and registers new descriptors first, as always).
 * The time slept comes from libuv's idle-time metric, so the turn that
 * handles the waking event does not count as waiting. */
void busypoll_run(struct busypoll *bp, uv_loop_t *loop) {
  if (!bp->limit_ns) {
    uv_run(loop, UV_RUN_DEFAULT);
    return;
  }
  uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
  uint64_t seen = busypoll_events;
  while (uv_run(loop, UV_RUN_NOWAIT)) {
    if (busypoll_events != seen || uv_backend_timeout(loop) == 0) {
      seen = busypoll_events; /* it did work, or has more to do at once */
      continue;
    }
    uint64_t start = uv_hrtime(), now = start;
    int alive = 1;
    while (now - start < bp->window_ns) {
      if (!(alive = uv_run(loop, UV_RUN_NOWAIT)) || busypoll_events != seen)
        break;
      now = uv_hrtime();
    }
    if (!alive)
      break;
    if (busypoll_events == seen) { /* the spin found nothing: sleep */
      uint64_t idle = uv_metrics_idle_time(loop);
      if (!uv_run(loop, UV_RUN_ONCE))
        break;
      /* An event sizes the window either way. A timer or a wake-up from
       * another thread says when the next request did not come: only that
       * a wait this long would have been in vain, so it may only shrink it
       * (an idle worker's window decays on its sweep timer). */
      uint64_t gap = (now - start) + (uv_metrics_idle_time(loop) - idle);
      if (busypoll_events != seen || gap > bp->limit_ns)
        busypoll_adapt(bp, gap);
    }
    seen = busypoll_events;
  }
}
