/* log.c — leveled logging to stderr or syslog (see tr_log.h). */
#include "tr_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *log_prog = "trellis";
static int log_max = TR_LOG_INFO;
static int log_syslog;

void tr_log_init(const char *prog, int level, int to_syslog)
{
    log_prog = prog;
    log_max = level;
    log_syslog = to_syslog;
    if (to_syslog) openlog(prog, LOG_PID, LOG_DAEMON);
}

int tr_log_level(void)
{
    return log_max;
}

void tr_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (level > log_max || level < 0) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    /* Under systemd, stderr goes to the journal, which stamps each line. */
    if (getenv("JOURNAL_STREAM")) {
        fprintf(stderr, "%s: %s\n", names[level], msg);
        return;
    }
    char ts[32];
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so concurrent writers do not interleave. */
    fprintf(stderr, "%s.%03ldZ %s: %s: %s\n", ts, t.tv_nsec / 1000000, log_prog, names[level], msg);
}
