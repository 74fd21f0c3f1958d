/* Who holds something: a name for this process that another process on the
 * same machine can check for liveness.
 *
 * An id is "<boot id>/<pid>/<start time in clock ticks since boot>". The
 * start time tells a live holder from a new process that got the same pid
 * after the holder died; the boot id tells a holder from before a reboot.
 * strata's embedded engines (SQLite files) are shared by processes of one
 * host only (strata check refuses anything else), so a holder written into
 * a shared database can always be checked this way. */
#ifndef STRATA_CORE_PROCESS_H
#define STRATA_CORE_PROCESS_H

#define PROCESS_ID_MAX 96

/* This process's id (computed once per process, a forked child included;
 * thread-safe). "" when /proc cannot be read. */
const char *process_self_id(void);

/* 1 when the process named by id runs, 0 when it surely does not (gone,
 * pid reused, another boot), -1 when it cannot be told (malformed, empty,
 * no /proc). */
int process_id_alive(const char *id);

#endif
