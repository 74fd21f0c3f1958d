/* Adaptive busy polling for a worker's event loop (http.busy_poll,
 * --busy-poll).
 *
 * A loop that sleeps in epoll_wait the moment it runs out of work gives its
 * CPU back; waking it again costs a wake-up, and in a virtual machine that
 * halts an idle vCPU at once (this project's bench machine polls for 0 ns
 * before halting) the host may hand the core to another guest meanwhile.
 * Under a steady load the gaps between events are tens of microseconds, so
 * those wake-ups land in the latency tail. HAProxy's `busy-polling` answers
 * the same problem by never sleeping; this driver spins only as long as
 * spinning has recently paid off, the way the kernel's haltpoll governor
 * sizes its poll window: a wait that ended sooner than the limit grows the
 * window (doubling, from 10 us), a longer one halves it, down to nothing
 * under light traffic. Off (0) by default: a spinning worker takes CPU time
 * that other processes on the same cores may need. */
#ifndef STRATA_HTTP_BUSYPOLL_H
#define STRATA_HTTP_BUSYPOLL_H

#include <stdint.h>
#include <uv.h>

#define BUSYPOLL_GROW_START_NS 10000u /* the first window after a short wait */

struct busypoll {
  uint64_t limit_ns;  /* the longest spin; 0 = plain uv_run */
  uint64_t window_ns; /* the current spin before sleeping */
};

/* Events this thread's loop has handled: the read and accept callbacks
 * count them, so the driver can tell a loop turn that did work from an
 * empty one without a system call. A missed kind of event only makes a
 * spin last longer; every turn still handles whatever is ready. */
extern _Thread_local uint64_t busypoll_events;
static inline void busypoll_note(void) { busypoll_events++; }

void busypoll_init(struct busypoll *bp, uint32_t limit_us);

/* Runs loop until it has nothing left to do, as uv_run(UV_RUN_DEFAULT) does,
 * spinning up to the current window before each sleep. uv_stop() does not
 * end it (uv_run clears the flag on return); the worker loops it drives end
 * by closing their handles. */
void busypoll_run(struct busypoll *bp, uv_loop_t *loop);

/* Adapts the window to a wait that spun in vain and then slept: gap_ns is
 * the whole wait, spin and sleep, from the loop running out of work to its
 * next event. Grown when a spin that long (within the limit) would have
 * caught it, halved when not. Exposed for the unit test. */
void busypoll_adapt(struct busypoll *bp, uint64_t gap_ns);

#endif
