#!/bin/sh
# Copies the seeds in seeds/<target>/ (text for config_load, rest_bodies and rvsadm_args,
# binary for health_replies; their formats are at the top of each target) into
# corpus/<target>/ (not tracked). config_load's seeds are the repository's config/*.toml,
# copied when they change (see README.md); the API tests' configuration is api.toml.
set -eu
cd "$(dirname "$0")"
for d in seeds/*/; do
    t=$(basename "$d")
    mkdir -p "corpus/$t"
    cp "$d"* "corpus/$t/"
done
