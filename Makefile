# strata build. `make` builds bin/strata; `make test` installs missing Debian
# packages, builds everything and runs every test; `make run` starts the
# monolith topology (config/monolith.yaml: gateway + two instances).
#
#   make SAN=1        ASan + UBSan build (objects under build/san/)
#   make CC=clang     the same tree with clang
#   make fuzz         libFuzzer targets (clang)

CC      ?= cc
SAN     ?= 0
BUILD   ?= build/$(if $(filter 1,$(SAN)),san,rel)
PKGS    := libuv jansson yaml-0.1 sqlite3 libjwt libcrypto
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral -Wvla -Wpointer-arith
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -pthread $(WARN) -Isrc -I$(LLHTTP_INC) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

SRC      := $(shell find src -name '*.c' ! -name main.c | sort)
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
DEP      := $(OBJ:.o=.d) $(BUILD)/src/main.d
GEN_OBJ  := $(BUILD)/gen/openapi.o
LIB      := $(BUILD)/libstrata.a
LLHTTP   := $(BUILD)/libllhttp.a
BIN      := $(if $(filter build/rel,$(BUILD)),bin/strata,$(BUILD)/strata)

UNIT_SRC := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps test unit run clean fuzz bench check-clang
all: $(BIN)

deps:
	@bash scripts/deps.sh

$(BIN): $(BUILD)/src/main.o $(LIB) $(LLHTTP)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(OBJ) $(GEN_OBJ)
	@rm -f $@
	@ar rcsP $@ $^

# /openapi.json is served from docs/openapi.json, embedded at build time.
$(BUILD)/gen/openapi.c: docs/openapi.json scripts/embed.sh
	@mkdir -p $(dir $@)
	@sh scripts/embed.sh $< app_openapi_json > $@
$(GEN_OBJ): $(BUILD)/gen/openapi.c
	@$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# llhttp comes from Debian's node-llhttp sources, built with their own flags:
# they are not ours to hold to -Werror. Strict mode makes llhttp refuse what
# RFC 9112 says to refuse (a chunk not followed by CRLF, stray spaces).
$(LLHTTP): $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c $(LLHTTP_SRC)/llhttp.c
	@mkdir -p $(BUILD)/llhttp
	@echo '  CC      llhttp (from $(LLHTTP_SRC))'
	@for f in api http llhttp; do \
	  $(CC) -O2 -g -fPIC -DLLHTTP_STRICT_MODE=1 $(filter -fsanitize%,$(CFLAGS)) -I$(LLHTTP_INC) -c -o $(BUILD)/llhttp/$$f.o $(LLHTTP_SRC)/$$f.c || exit 1; done
	@ar rcs $@ $(BUILD)/llhttp/*.o

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(LLHTTP)
	@mkdir -p $(dir $@)
	@echo '  TEST    $@'
	@$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka) -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $< $(LIB) $(LLHTTP) $(LDLIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT_BIN)

test: deps
	@$(MAKE) --no-print-directory all unit
	@bash tests/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	./bin/strata up --config config/monolith.yaml --data var

fuzz:
	@$(MAKE) --no-print-directory -f fuzz/Makefile

bench: deps
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	bash bench/http.sh
	bash bench/memory.sh
	bash bench/api.sh
	bash bench/gateway.sh

check-clang:
	@$(MAKE) --no-print-directory CC=clang BUILD=build/clang all unit

clean:
	rm -rf build bin

-include $(DEP) $(UNIT_BIN:=.d)
