/* A YAML document as a small tree of mappings, sequences and scalars.
 *
 * libyaml hands out a stream of events; walking that stream while checking a
 * schema mixes two jobs and makes every new section (lists of routes, pools of
 * upstreams) re-implement the event bookkeeping. Instead ytree_parse() reads
 * the whole document into a tree first, and a binder (see config.c) walks the
 * tree against its schema afterwards. Every node keeps the 1-based line it
 * starts on, so the binder can point at the exact line of a bad value.
 *
 * The tree is plain data and read-only once built:
 *   - mapping keys are always scalars and unique within their mapping
 *     (duplicates and list/mapping keys are reported and left out);
 *   - nesting is at most YTREE_MAX_DEPTH levels and the whole document at
 *     most YTREE_MAX_NODES nodes, so hostile input has a hard cap;
 *   - aliases, and more than one document per input, are refused.
 *
 * Names use the ytree_ prefix so they never collide with libyaml's yaml_. */
#ifndef STRATA_CORE_YAML_TREE_H
#define STRATA_CORE_YAML_TREE_H

#include <stddef.h>

#define YTREE_MAX_DEPTH 64     /* containers inside containers */
#define YTREE_MAX_NODES 100000 /* scalars + sequences + mappings */
#define YTREE_MAX_KEYS 4096    /* pairs in one mapping (bounds duplicate checks) */

enum ynode_kind {
  YNODE_SCALAR = 1, /* text; an empty value is a scalar with len 0 */
  YNODE_SEQUENCE,   /* items[0 .. count) */
  YNODE_MAPPING     /* pairs[0 .. count), in document order */
};

struct ynode;

struct ynode_pair {
  struct ynode *key; /* always a YNODE_SCALAR */
  struct ynode *value;
};

struct ynode {
  enum ynode_kind kind;
  int line;   /* 1-based line where the node starts */
  int plain;  /* scalar written without quotes or |, > (so ~ means null) */
  char *text; /* scalar bytes plus a terminating NUL; may hold a NUL inside
               * (from "\0"), so trust len, not strlen */
  size_t len;
  size_t count;             /* items of a sequence or pairs of a mapping */
  struct ynode **items;     /* YNODE_SEQUENCE only */
  struct ynode_pair *pairs; /* YNODE_MAPPING only */
};

/* Results of ytree_parse(). */
enum ytree_result {
  YTREE_OK = 0,        /* tree complete, nothing reported */
  YTREE_EINVALID = -1, /* problems reported, tree complete without them */
  YTREE_EFATAL = -2    /* syntax error, limit or out of memory: no tree */
};

/* Receives one problem: its 1-based line (0 when the input as a whole is at
 * fault) and a sentence that names the key path, e.g. "duplicate key
 * server.listen (first at line 2)". message is only valid during the call. */
typedef void (*ytree_error_cb)(void *ctx, int line, const char *message);

/* Parses data[0 .. len) (need not be NUL-terminated) into a tree. Reports
 * every problem through on_error, in document order, and returns a
 * ytree_result. On YTREE_OK and YTREE_EINVALID *root holds the tree (NULL for
 * an input without any document, e.g. only comments), owned by the caller
 * and released with ytree_free(); on YTREE_EFATAL *root is NULL. */
int ytree_parse(const char *data, size_t len, struct ynode **root,
                ytree_error_cb on_error, void *ctx);

/* Frees a node and everything below it. Accepts NULL. */
void ytree_free(struct ynode *node);

/* The value stored under key in a mapping, or NULL when node is not a
 * mapping or has no such key. */
const struct ynode *ytree_get(const struct ynode *map, const char *key);

/* True for a missing value: NULL, or a plain scalar that is empty, ~ or
 * null/Null/NULL. A quoted "" is an empty string, not null. */
int ytree_is_null(const struct ynode *node);

/* Copies text[0 .. len) into buf (size bytes) in a form safe for messages:
 * printable ASCII as is, quotes and backslashes escaped, other bytes as \xNN,
 * cut with "..." when it does not fit. Returns buf. */
const char *ytree_printable(const char *text, size_t len, char *buf,
                            size_t size);

/* "a value", "a list" or "a mapping", for messages such as
 * "server.listen must be a single value, not a list". */
const char *ytree_kind_name(enum ynode_kind kind);

#endif
