# Sourced by the scripts that take the whole netns lab for a long run (perf/soak.sh,
# perf/e2e/run.sh): who else is using the lab, and waiting for them. The caller defines
# `say` and `die` and sets WAIT_LAB (seconds to wait before giving up; 0 = do not wait).

# Our own ancestors, one per line: test.sh (or CI) may run the caller after its lab tests,
# and must not count as another user of the lab.
lab_ancestors() {
    local pid=$$
    while [[ "$pid" -gt 1 ]]; do
        echo "$pid"
        pid="$(awk '{ print $4 }' "/proc/$pid/stat" 2>/dev/null || echo 1)"
    done
}

# lab_busy USERS_PATTERN USERS_NAME: prints why the lab is in use and succeeds, or fails
# when it is free. USERS_PATTERN is a `pgrep -f` pattern for the other programs that use
# the lab; USERS_NAME says what they are, for the message.
lab_busy() {
    local pattern="$1" name="$2" why="" users
    if ip netns list 2>/dev/null | grep -q '^lab-'; then
        why="lab namespaces exist ($(ip netns list | awk '/^lab-/ { printf "%s ", $1 }'))"
    fi
    users="$(pgrep -f "$pattern" 2>/dev/null | grep -vxF -f <(lab_ancestors) || true)"
    if [[ -n "$users" ]]; then
        why="${why:+$why; }$name running (pid $(echo "$users" | paste -sd' '))"
    fi
    [[ -z "$why" ]] || { echo "$why"; return 0; }
    return 1
}

# wait_for_lab USERS_PATTERN USERS_NAME POLL_SECONDS: returns once the lab is free, or
# dies after WAIT_LAB seconds naming who holds it and how to clear a stale leftover.
wait_for_lab() {
    local pattern="$1" name="$2" poll="$3" why deadline=$((SECONDS + WAIT_LAB))
    while why="$(lab_busy "$pattern" "$name")"; do
        if ((SECONDS >= deadline)); then
            die "the lab is in use: $why. Wait for its user (--wait-lab SECONDS), or if it is a stale leftover: sudo bash vm-testbed/lab.sh down"
        fi
        say "the lab is in use ($why); waiting"
        sleep "$poll"
    done
}
