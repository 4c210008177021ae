/*
 * log.h - leveled logging to stderr.
 *
 * Contract: log_msg() never allocates and never fails; lines longer than the
 * internal buffer are truncated.  The level is process-wide (a file-static in
 * log.c, set once at start-up), so every module may log without a context.
 */
#ifndef QKV_LOG_H
#define QKV_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
