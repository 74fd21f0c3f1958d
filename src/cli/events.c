/* `strata events dead|replay|stats`: the operator's view of the embedded
 * bus (docs/events.md). Reads and edits <data>/events.db next to running
 * strata processes; the queries live in src/bus/admin.c, this file only
 * parses flags and prints JSON. Exit status: 0 done, 1 failed (with a
 * message on stderr), 2 usage error. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/topology.h"
#include "bus/bus.h"
#include "cli/cli.h"
#include "core/config.h"

static const char usage_text[] =
    "usage:\n"
    "  strata events dead   [--data DIR | --config FILE] [--subscription NAME]\n"
    "  strata events replay [--data DIR | --config FILE] (--all | --id N) [--subscription NAME]\n"
    "  strata events stats  [--data DIR | --config FILE]\n";

struct events_args {
  const char *cmd;
  char data[1024];
  const char *subscription;
  int all;
  long long id; /* 0 = not given */
};

static int usage(const char *fmt, const char *arg) {
  if (fmt) {
    fprintf(stderr, "strata events: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
  }
  fputs(usage_text, stderr);
  return 2;
}

/* Milliseconds as RFC 3339, or JSON null for 0. */
static json_t *time_json(long long ms) {
  char t[32];
  if (ms <= 0)
    return json_null();
  db_format_time(ms, t);
  return json_string(t);
}

/* A payload is stored as JSON text (bus_outbox_append validated it):
 * embed it as JSON, or as a string should it ever not parse. */
static json_t *payload_json(const char *payload) {
  json_t *v = json_loads(payload, JSON_DECODE_ANY, NULL);
  return v ? v : json_string(payload);
}

static int print_json(json_t *doc, size_t flags) {
  char *s = doc ? json_dumps(doc, flags) : NULL;
  json_decref(doc);
  if (!s)
    return -1;
  puts(s);
  free(s);
  return 0;
}

static int on_dead_letter(const struct bus_dead_letter *dl, void *ctx) {
  (void)ctx;
  json_t *o = json_object();
  json_object_set_new(o, "id", json_integer(dl->id));
  json_object_set_new(o, "subscription", json_string(dl->subscription));
  json_object_set_new(o, "seq", json_integer(dl->seq));
  json_object_set_new(o, "event_id", json_string(dl->event_id));
  json_object_set_new(o, "type", json_string(dl->type));
  json_object_set_new(o, "key", json_string(dl->key));
  json_object_set_new(o, "payload", payload_json(dl->payload));
  json_object_set_new(o, "created_at", time_json(dl->created_at));
  json_object_set_new(o, "attempts", json_integer(dl->attempts));
  json_object_set_new(o, "error", json_string(dl->error));
  json_object_set_new(o, "failed_at", time_json(dl->failed_at));
  return print_json(o, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0 ? 0 : 1;
}

static int cmd_dead(struct db *db, const struct events_args *a) {
  int n = bus_dead_letters_list(db, a->subscription, on_dead_letter, NULL);
  if (n < 0) {
    fprintf(stderr, "strata events dead: cannot read dead letters: %s\n", db_errmsg(db));
    return 1;
  }
  return 0;
}

static int cmd_replay(struct db *db, const struct events_args *a) {
  long long n = bus_dead_letters_replay(db, a->subscription, a->all ? 0 : a->id);
  if (n < 0) {
    fprintf(stderr, "strata events replay: cannot move dead letters: %s\n", db_errmsg(db));
    return 1;
  }
  if (n == 0 && !a->all) {
    fprintf(stderr, "strata events replay: no dead letter with id %lld%s%s\n", a->id,
            a->subscription ? " in subscription " : "", a->subscription ? a->subscription : "");
    return 1;
  }
  printf("replayed %lld dead letter%s\n", n, n == 1 ? "" : "s");
  return 0;
}

static int cmd_stats(struct db *db) {
  struct bus_subscription_stats *v = NULL;
  long long last = 0;
  int n = bus_stats_read(db, &last, &v);
  if (n < 0) {
    fprintf(stderr, "strata events stats: cannot read events.db: %s\n", db_errmsg(db));
    return 1;
  }
  json_t *doc = json_object(), *subs = json_array();
  long long now = db_now_ms();
  json_object_set_new(doc, "log_last_seq", json_integer(last));
  for (int i = 0; i < n; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(v[i].name));
    json_object_set_new(o, "offset", json_integer(v[i].offset));
    json_object_set_new(o, "lag", json_integer(v[i].lag));
    json_object_set_new(o, "delivered", json_integer(v[i].delivered));
    json_object_set_new(o, "redelivered", json_integer(v[i].redelivered));
    json_object_set_new(o, "dead_letters", json_integer(v[i].dead_letters));
    json_object_set_new(o, "retrying", json_integer(v[i].retrying));
    json_object_set_new(o, "replays_pending", json_integer(v[i].replays_pending));
    int held = v[i].lease_until >= now && v[i].lease_owner[0];
    json_object_set_new(o, "lease_owner", held ? json_string(v[i].lease_owner) : json_null());
    json_object_set_new(o, "lease_until", held ? time_json(v[i].lease_until) : json_null());
    json_array_append_new(subs, o);
  }
  json_object_set_new(doc, "subscriptions", subs);
  free(v);
  return print_json(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? 0 : 1;
}

static int parse_id(const char *text, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v <= 0 || text[0] == '+' || text[0] == '-')
    return -1;
  *out = v;
  return 0;
}

int cli_events(int argc, char **argv) {
  struct events_args a = {0};
  const char *config = NULL, *data = NULL;

  if (argc < 1)
    return usage(NULL, NULL);
  a.cmd = argv[0];
  if (strcmp(a.cmd, "--help") == 0 || strcmp(a.cmd, "-h") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (strcmp(a.cmd, "dead") != 0 && strcmp(a.cmd, "replay") != 0 && strcmp(a.cmd, "stats") != 0)
    return usage("unknown command '%s'", a.cmd);
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    int takes_value = strcmp(flag, "--data") == 0 || strcmp(flag, "--config") == 0 ||
                      strcmp(flag, "--subscription") == 0 || strcmp(flag, "--id") == 0;
    if (takes_value && i + 1 >= argc)
      return usage("%s needs a value", flag);
    if (strcmp(flag, "--data") == 0)
      data = argv[++i];
    else if (strcmp(flag, "--config") == 0)
      config = argv[++i];
    else if (strcmp(flag, "--subscription") == 0 && strcmp(a.cmd, "stats") != 0)
      a.subscription = argv[++i];
    else if (strcmp(flag, "--id") == 0 && strcmp(a.cmd, "replay") == 0) {
      if (parse_id(argv[++i], &a.id) != 0)
        return usage("--id \"%s\" is not a dead letter id (a positive number)", argv[i]);
    } else if (strcmp(flag, "--all") == 0 && strcmp(a.cmd, "replay") == 0)
      a.all = 1;
    else
      return usage("unexpected argument '%s'", flag);
  }
  if (strcmp(a.cmd, "replay") == 0 && a.all == (a.id != 0))
    return usage("replay needs exactly one of --all and --id N%s", "");
  if (data && config)
    return usage("give --data or --config, not both%s", "");

  /* The directory of events.db: --data, else bus.dir of --config resolved
   * under its server.data (where every service of a topology shares it),
   * else the default (./var): the place `strata serve` would use. */
  struct strata_config cfg;
  config_defaults(&cfg);
  if (config) {
    struct config_errors errs = {0};
    if (config_load(config, &cfg, &errs) != 0) {
      int shown = errs.count < CONFIG_MAX_ERRORS ? errs.count : CONFIG_MAX_ERRORS;
      for (int i = 0; i < shown; i++) {
        if (errs.items[i].line > 0)
          fprintf(stderr, "%s:%d: %s\n", config, errs.items[i].line, errs.items[i].message);
        else
          fprintf(stderr, "%s: %s\n", config, errs.items[i].message);
      }
      return 1;
    }
  }
  char why[512];
  if (topology_place(&cfg, NULL, 0, why, sizeof why) != 0) {
    fprintf(stderr, "strata events %s: %s\n", a.cmd, why);
    return 1;
  }
  snprintf(a.data, sizeof a.data, "%s", data ? data : cfg.bus.dir);

  struct db *db = NULL;
  if (bus_admin_open(a.data, &db, why, sizeof why) != 0) {
    fprintf(stderr, "strata events %s: %s\n", a.cmd, why);
    return 1;
  }
  int rc;
  if (strcmp(a.cmd, "dead") == 0)
    rc = cmd_dead(db, &a);
  else if (strcmp(a.cmd, "replay") == 0)
    rc = cmd_replay(db, &a);
  else
    rc = cmd_stats(db);
  db_close(db);
  return rc;
}
