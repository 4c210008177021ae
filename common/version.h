/* version.h - the one place the release version is written. */
#ifndef QKV_VERSION_H
#define QKV_VERSION_H
#define QKV_VERSION "0.1.0"
#endif
