/* libFuzzer target for the configuration loader: YAML syntax (libyaml), the
 * tree builder in core/yaml_tree.c and the binding in core/config.c.
 *
 * Inputs go through config_load_buffer(), the same path config_load() takes
 * after reading the file, so no temporary files are needed. Besides crashes
 * and leaks the target checks the loader's own promises: a rejected input
 * leaves the config untouched, an accepted one reports no errors, and every
 * stored message is NUL-terminated and carries a sane line.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_config.c \
 *     src/core/config.c src/core/yaml_tree.c $(pkg-config --cflags --libs yaml-0.1)
 *   ./a.out fuzz/corpus/config */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct strata_config cfg, before;
  struct config_errors errs;
  int i, stored, rc;

  config_defaults(&cfg);
  before = cfg;
  rc = config_load_buffer((const char *)data, size, &cfg, &errs);

  if ((rc == 0) != (errs.count == 0))
    abort();
  if (rc != 0 && memcmp(&cfg, &before, sizeof cfg) != 0)
    abort();
  stored = errs.count < CONFIG_MAX_ERRORS ? errs.count : CONFIG_MAX_ERRORS;
  for (i = 0; i < stored; i++) {
    if (errs.items[i].line < 0 || memchr(errs.items[i].message, '\0',
                                         sizeof errs.items[i].message) == NULL)
      abort();
    if (i > 0 && errs.items[i - 1].line > errs.items[i].line)
      abort(); /* config_load() promises line order */
  }
  if (rc == 0) {
    /* Whatever was accepted must be within the documented limits. */
    if (cfg.workers > 256 || cfg.listen_port == 0 || cfg.http.max_body_bytes > (1ULL << 30) ||
        memchr(cfg.listen_host, '\0', sizeof cfg.listen_host) == NULL ||
        memchr(cfg.data_dir, '\0', sizeof cfg.data_dir) == NULL ||
        strcmp(config_log_level_name(cfg.log_level), "unknown") == 0)
      abort();
  }
  return 0;
}
