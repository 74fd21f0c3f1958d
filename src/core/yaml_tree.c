/* Builds the ytree (see yaml_tree.h) from libyaml's event stream.
 *
 * The builder keeps a stack of open containers. Every new node is attached to
 * the innermost one: appended to a sequence, or, in a mapping, held as the
 * pending key until its value arrives, and then added as a pair. A pair that
 * must be left out (duplicate key, list or mapping used as a key) is reported
 * and its value becomes an "orphan": still built, so its own problems are
 * found, but freed as soon as it closes. On any fatal problem the builder
 * frees everything it holds and returns no tree.
 *
 * Ownership during the build: the tree reachable from root, each frame's
 * pending key and each orphan frame's node are the only owning references;
 * ytree_free() of those three sets releases everything exactly once. */
#include "core/yaml_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct frame {
  struct ynode *node;        /* the open sequence or mapping */
  struct ynode *pending_key; /* mapping: key read, value not yet */
  int orphan;                /* left out of the tree: free when it closes */
  size_t path_len;           /* strlen of builder.path for this container */
};

struct builder {
  ytree_error_cb on_error;
  void *ctx;
  struct ynode *root;
  struct frame stack[YTREE_MAX_DEPTH];
  int depth;
  size_t nodes;
  int reported;
  const char *data; /* the input, to turn byte offsets into lines */
  size_t len;
  char path[512]; /* key path of the innermost container, e.g. http */
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void report(struct builder *b, int line, const char *fmt, ...) {
  char msg[320];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  b->reported = 1;
  if (b->on_error)
    b->on_error(b->ctx, line, msg);
}

const char *ytree_printable(const char *text, size_t len, char *buf,
                            size_t size) {
  size_t total = 0, o = 0, i;

  if (size == 0)
    return buf;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    total += (c == '"' || c == '\\') ? 2 : (c >= 0x20 && c < 0x7f) ? 1 : 4;
  }
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    char one[5];
    size_t n;

    if (c == '"' || c == '\\')
      n = (size_t)snprintf(one, sizeof one, "\\%c", c);
    else if (c >= 0x20 && c < 0x7f)
      n = (size_t)snprintf(one, sizeof one, "%c", c);
    else
      n = (size_t)snprintf(one, sizeof one, "\\x%02x", c);
    /* When everything fits write it all; otherwise keep room for "...". */
    if (total + 1 > size && o + n + 3 + 1 > size) {
      if (o + 3 + 1 <= size) {
        memcpy(buf + o, "...", 3);
        o += 3;
      }
      break;
    }
    memcpy(buf + o, one, n);
    o += n;
  }
  buf[o] = '\0';
  return buf;
}

const char *ytree_kind_name(enum ynode_kind kind) {
  switch (kind) {
  case YNODE_SCALAR:
    return "a value";
  case YNODE_SEQUENCE:
    return "a list";
  case YNODE_MAPPING:
    return "a mapping";
  }
  return "an unknown node";
}

void ytree_free(struct ynode *node) {
  size_t i;

  if (!node)
    return;
  for (i = 0; node->items && i < node->count; i++)
    ytree_free(node->items[i]);
  for (i = 0; node->pairs && i < node->count; i++) {
    ytree_free(node->pairs[i].key);
    ytree_free(node->pairs[i].value);
  }
  free(node->items);
  free(node->pairs);
  free(node->text);
  free(node);
}

const struct ynode *ytree_get(const struct ynode *map, const char *key) {
  size_t i, n;

  if (!map || map->kind != YNODE_MAPPING || !key)
    return NULL;
  n = strlen(key);
  for (i = 0; i < map->count; i++) {
    const struct ynode *k = map->pairs[i].key;
    if (k->len == n && memcmp(k->text, key, n) == 0)
      return map->pairs[i].value;
  }
  return NULL;
}

int ytree_is_null(const struct ynode *node) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  size_t i;

  if (!node)
    return 1;
  if (node->kind != YNODE_SCALAR || !node->plain)
    return 0;
  for (i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
    if (node->len == strlen(nulls[i]) && memcmp(node->text, nulls[i], node->len) == 0)
      return 1;
  return 0;
}

static struct ynode *node_new(struct builder *b, enum ynode_kind kind,
                              const yaml_mark_t *mark) {
  struct ynode *n;

  if (b->nodes >= YTREE_MAX_NODES) {
    report(b, (int)mark->line + 1, "the document has more than %d values",
           YTREE_MAX_NODES);
    return NULL;
  }
  n = calloc(1, sizeof *n);
  if (!n) {
    report(b, 0, "out of memory while reading YAML");
    return NULL;
  }
  b->nodes++;
  n->kind = kind;
  n->line = (int)mark->line + 1;
  return n;
}

/* Arrays grow to 4, 8, 16, ... so their capacity follows from count alone
 * and the public node needs no capacity field. Returns the array, grown
 * when count has reached its capacity, or NULL when out of memory (the old
 * array is then untouched). */
static void *reserve(void *array, size_t count, size_t elem) {
  if (count != 0 && (count < 4 || (count & (count - 1)) != 0))
    return array;
  return realloc(array, (count ? count * 2 : 4) * elem);
}

/* Appends segment to b->path ("." before keys, nothing before "[i]");
 * a path too long for the buffer is cut, which only shortens messages. */
static void path_push(struct builder *b, const char *segment) {
  size_t used = strlen(b->path);
  const char *dot = (used && segment[0] != '[') ? "." : "";

  if (used < sizeof b->path)
    snprintf(b->path + used, sizeof b->path - used, "%s%s", dot, segment);
}

/* Path of key inside the innermost container, for messages. */
static void child_path(const struct builder *b, const struct ynode *key,
                       char *out, size_t size) {
  char shown[96];

  ytree_printable(key->text, key->len, shown, sizeof shown);
  snprintf(out, size, "%s%s%s", b->path, b->path[0] ? "." : "", shown);
}

/* Attaches node to the innermost container (or makes it the root) and
 * writes the path segment it adds into segment. Returns 0 when attached,
 * 1 when it was left out (an orphan the caller must free when complete),
 * -1 on a fatal problem (node not attached; the caller frees it). */
static int attach(struct builder *b, struct ynode *node, char *segment,
                  size_t seg_size) {
  struct frame *f;
  struct ynode *parent, *key;
  struct ynode_pair *pairs;
  char path[640]; /* b->path + "." + a printable key */
  size_t i;

  segment[0] = '\0';
  if (b->depth == 0) {
    b->root = node;
    return 0;
  }
  f = &b->stack[b->depth - 1];
  parent = f->node;
  if (parent->kind == YNODE_SEQUENCE) {
    struct ynode **items = reserve(parent->items, parent->count, sizeof *items);
    if (!items) {
      report(b, 0, "out of memory while reading YAML");
      return -1;
    }
    parent->items = items;
    snprintf(segment, seg_size, "[%zu]", parent->count);
    parent->items[parent->count++] = node;
    return 0;
  }
  if (!f->pending_key) {
    f->pending_key = node;
    snprintf(segment, seg_size, "(key)");
    return 0;
  }
  key = f->pending_key;
  f->pending_key = NULL;
  if (key->kind != YNODE_SCALAR) {
    snprintf(segment, seg_size, "?");
    report(b, key->line, "%s%skeys must be single values, not %s",
           b->path, b->path[0] ? ": " : "", ytree_kind_name(key->kind));
    ytree_free(key);
    return 1;
  }
  ytree_printable(key->text, key->len, segment, seg_size);
  /* libyaml dates an empty value by the token after it, often the next
   * line; the key's line is where the reader will look. */
  if (node->kind == YNODE_SCALAR && node->len == 0 && node->plain)
    node->line = key->line;
  for (i = 0; i < parent->count; i++) {
    const struct ynode *k = parent->pairs[i].key;
    if (k->len == key->len && memcmp(k->text, key->text, k->len) == 0) {
      child_path(b, key, path, sizeof path);
      report(b, key->line, "duplicate key %s (first at line %d)", path, k->line);
      ytree_free(key);
      return 1;
    }
  }
  if (parent->count >= YTREE_MAX_KEYS) {
    report(b, key->line, "%s has more than %d keys", b->path[0] ? b->path : "the top level",
           YTREE_MAX_KEYS);
    ytree_free(key);
    return -1;
  }
  pairs = reserve(parent->pairs, parent->count, sizeof *pairs);
  if (!pairs) {
    report(b, 0, "out of memory while reading YAML");
    ytree_free(key);
    return -1;
  }
  parent->pairs = pairs;
  parent->pairs[parent->count].key = key;
  parent->pairs[parent->count].value = node;
  parent->count++;
  return 0;
}

/* Adds a scalar or opens a container. Returns 0 or -1 (fatal). */
static int add_node(struct builder *b, const yaml_event_t *ev) {
  struct ynode *node;
  char segment[128];
  int rc;

  if (ev->type == YAML_SCALAR_EVENT) {
    node = node_new(b, YNODE_SCALAR, &ev->start_mark);
    if (!node)
      return -1;
    node->text = malloc(ev->data.scalar.length + 1);
    if (!node->text) {
      report(b, 0, "out of memory while reading YAML");
      goto fail;
    }
    memcpy(node->text, ev->data.scalar.value, ev->data.scalar.length);
    node->text[ev->data.scalar.length] = '\0';
    node->len = ev->data.scalar.length;
    node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  } else {
    if (b->depth >= YTREE_MAX_DEPTH) {
      report(b, (int)ev->start_mark.line + 1, "values are nested more than %d levels deep",
             YTREE_MAX_DEPTH);
      return -1;
    }
    node = node_new(b, ev->type == YAML_MAPPING_START_EVENT ? YNODE_MAPPING : YNODE_SEQUENCE,
                    &ev->start_mark);
    if (!node)
      return -1;
  }

  rc = attach(b, node, segment, sizeof segment);
  if (rc < 0)
    goto fail;
  if (node->kind == YNODE_SCALAR) {
    if (rc == 1)
      ytree_free(node);
    return 0;
  }
  b->stack[b->depth].node = node;
  b->stack[b->depth].pending_key = NULL;
  b->stack[b->depth].orphan = rc == 1;
  path_push(b, segment);
  b->stack[b->depth].path_len = strlen(b->path);
  b->depth++;
  return 0;

fail:
  ytree_free(node);
  return -1;
}

static void close_node(struct builder *b) {
  struct frame *f = &b->stack[--b->depth];

  if (f->orphan)
    ytree_free(f->node);
  b->path[b->depth ? b->stack[b->depth - 1].path_len : 0] = '\0';
}

/* Releases everything a failed build holds (see the ownership note). */
static void builder_discard(struct builder *b) {
  while (b->depth > 0) {
    struct frame *f = &b->stack[--b->depth];
    ytree_free(f->pending_key);
    if (f->orphan)
      ytree_free(f->node);
  }
  ytree_free(b->root);
  b->root = NULL;
}

static int line_of_offset(const struct builder *b, size_t offset) {
  int line = 1;
  size_t i;

  for (i = 0; i < offset && i < b->len; i++)
    if (b->data[i] == '\n')
      line++;
  return line;
}

static void report_parser_error(struct builder *b, const yaml_parser_t *p) {
  const char *problem = p->problem ? p->problem : "unreadable input";

  switch (p->error) {
  case YAML_MEMORY_ERROR:
    report(b, 0, "out of memory while reading YAML");
    break;
  case YAML_READER_ERROR:
    report(b, line_of_offset(b, p->problem_offset), "YAML syntax error: %s", problem);
    break;
  default:
    if (p->context)
      report(b, (int)p->problem_mark.line + 1, "YAML syntax error: %s (%s at line %d)",
             problem, p->context, (int)p->context_mark.line + 1);
    else
      report(b, (int)p->problem_mark.line + 1, "YAML syntax error: %s", problem);
    break;
  }
}

int ytree_parse(const char *data, size_t len, struct ynode **root,
                ytree_error_cb on_error, void *ctx) {
  yaml_parser_t parser;
  yaml_event_t ev;
  struct builder *b;
  int documents = 0, done = 0, rc = YTREE_EFATAL;

  *root = NULL;
  /* The frame stack is a few kilobytes: keep it off the caller's stack. */
  b = calloc(1, sizeof *b);
  if (!b) {
    if (on_error)
      on_error(ctx, 0, "out of memory while reading YAML");
    return YTREE_EFATAL;
  }
  b->on_error = on_error;
  b->ctx = ctx;
  b->data = data;
  b->len = len;
  if (!yaml_parser_initialize(&parser)) {
    report(b, 0, "out of memory while reading YAML");
    free(b);
    return YTREE_EFATAL;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);

  while (!done) {
    int failed = 0;

    if (!yaml_parser_parse(&parser, &ev)) {
      report_parser_error(b, &parser);
      goto fail;
    }
    switch (ev.type) {
    case YAML_DOCUMENT_START_EVENT:
      if (++documents > 1) {
        report(b, (int)ev.start_mark.line + 1,
               "only one YAML document is allowed; a second one starts here");
        failed = 1;
      }
      break;
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      failed = add_node(b, &ev) < 0;
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      close_node(b);
      break;
    case YAML_ALIAS_EVENT: {
      char name[64];
      const char *anchor = (const char *)ev.data.alias.anchor;
      ytree_printable(anchor, strlen(anchor), name, sizeof name);
      report(b, (int)ev.start_mark.line + 1,
             "aliases (*%s) are not supported; write the value out instead", name);
      failed = 1;
      break;
    }
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default: /* stream start, document end, no event */
      break;
    }
    yaml_event_delete(&ev);
    if (failed)
      goto fail;
  }

  *root = b->root;
  rc = b->reported ? YTREE_EINVALID : YTREE_OK;
  yaml_parser_delete(&parser);
  free(b);
  return rc;

fail:
  builder_discard(b);
  yaml_parser_delete(&parser);
  free(b);
  return rc;
}
