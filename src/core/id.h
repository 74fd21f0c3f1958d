/* Resource ids: "<prefix>_" + 12 hex digits of milliseconds since the epoch
 * + 10 hex digits of randomness. Opaque to clients, unique without
 * coordination between processes, and ordered by creation time, so cursor
 * pagination can use them as its cursor. */
#ifndef STRATA_CORE_ID_H
#define STRATA_CORE_ID_H

#include <stddef.h>

#define ID_MAX 48

/* Writes a new id with the given prefix ("usr") into out (ID_MAX bytes). */
void id_new(const char *prefix, char out[ID_MAX]);

/* 1 when s looks like an id of this prefix (length and alphabet), so junk
 * never reaches a query. */
int id_valid(const char *prefix, const char *s);

#endif
