/*
 * tr_log.h — the one logging API of trellis's programs.
 *
 * Overview
 *   tr_log_err/warn/info/debug format a line and hand it to the sink:
 *   stderr ("trellisd: warn: …" with a timestamp) in the foreground, syslog
 *   (which journald reads) as a daemon. Lines above the configured level are
 *   dropped before formatting.
 *
 * Caveats
 *   - Never pass key material: logs are read by people and copied into bug
 *     reports.
 *   - Thread-safe (one write per line).
 */
#ifndef TR_LOG_H
#define TR_LOG_H

#include "../../core/tr_error.h"

enum { TR_LOG_ERR = 0, TR_LOG_WARN = 1, TR_LOG_INFO = 2, TR_LOG_DEBUG = 3 };

/* Sets the program name, the highest level written, and the sink: to_syslog
 * true opens syslog (LOG_DAEMON), false writes to stderr. */
void tr_log_init(const char *prog, int level, int to_syslog);
int tr_log_level(void);

void tr_log(int level, const char *fmt, ...) TR_PRINTF(2, 3);
#define tr_log_err(...) tr_log(TR_LOG_ERR, __VA_ARGS__)
#define tr_log_warn(...) tr_log(TR_LOG_WARN, __VA_ARGS__)
#define tr_log_info(...) tr_log(TR_LOG_INFO, __VA_ARGS__)
#define tr_log_debug(...) tr_log(TR_LOG_DEBUG, __VA_ARGS__)

#endif
