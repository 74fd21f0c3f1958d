#!/bin/sh
# Turns a file into a C source defining `const char NAME[]` (NUL-terminated)
# and `const size_t NAME_len`: how docs/openapi.json is served without a copy
# in the source tree. usage: embed.sh FILE NAME > OUT.c
set -eu
printf '/* Generated from %s by scripts/embed.sh; do not edit. */\n#include <stddef.h>\n' "$1"
printf 'const char %s[] = {' "$2"
od -An -v -tu1 "$1" | tr -s ' \n' '\n\n' | sed '/^$/d' | tr '\n' ',' 
printf '0};\nconst size_t %s_len = sizeof %s - 1;\n' "$2" "$2"
