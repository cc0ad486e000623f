#!/usr/bin/env bash
# The appliance's end-to-end test in the VM testbed (meant to run as `test.sh --vm`).
#
#   vm-testbed/vm-test.sh [--no-lab] [--keep] [--image FILE] [--rebuild-image]
#
# Packages the release binaries already built (package.sh --no-build), builds the image
# with that .deb, config/lab-vm.toml and the virtio NICs bound to uio_pci_generic when it is
# missing or with --rebuild-image (test.sh --vm: the image then holds this build), boots the VM
# (vm-testbed/vm.sh up) and checks, in order:
#
#   systemd   rvsd.service is active with Type=notify's status line (READY=1 came), no
#             restarts; rvsadm inside lists the service; both workers poll
#   lab       (unless --no-lab) NAT: curl round robin 10/10/10 over the three real
#             servers and a 20 MB download byte exact; DR likewise (the config's
#             forward = "dr", the servers in DR mode); both workers forwarded
#             (per-worker counters of /v1/status)
#   reload    a weight changed in /etc/rvs/rvs.toml + systemctl reload: rvsadm shows it
#             (and with the lab, rr skips a weight-0 server: 15/15/0); an invalid file:
#             reload refused, the running configuration stays, the unit stays active
#   bad input an invalid config on restart: the unit fails with the TOML error in the
#             journal, at most 3 starts (start limit), no loop; hugepages missing:
#             rvsd fails naming the fix (and rvs-hugepages refuses a bad RVS_HUGEPAGES);
#             a data NIC not bound to a DPDK driver: rvsd fails naming the device
#   package   dpkg -i of a higher version keeps an edited /etc/rvs/rvs.toml; dpkg --purge
#             leaves no file of the package behind
#
# Holds the lab lock for its whole run (vm.sh then skips its own locking), and powers the
# VM off at the end unless --keep. Prints one line per check; exits 1 on the first failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
export RVS_VM_IMAGE=${RVS_VM_IMAGE:-$HERE/run/vm/rvs-appliance.img}
lab=1
keep=0
rebuild=0
while [ $# -gt 0 ]; do
	case $1 in
	--no-lab) lab=0 ;;
	--keep) keep=1 ;;
	--rebuild-image) rebuild=1 ;;
	--image)
		RVS_VM_IMAGE=$2
		shift
		;;
	*)
		echo "vm-test.sh: unknown argument \`$1'" >&2
		exit 2
		;;
	esac
	shift
done

# On a failure with the VM up: its workers' counters and rvsd's journal, to see why.
fail() {
	echo "FAIL: $*" >&2
	if [ -f "$HERE/run/vm/qemu.pid" ]; then
		echo "--- per-worker counters (/v1/status):" >&2
		vm curl -s --max-time 10 127.0.0.1:8700/v1/status 2>/dev/null | per_worker >&2 || true
		echo "--- journalctl -u rvsd (last 30 lines):" >&2
		vm journalctl -b -u rvsd -o cat --no-pager 2>/dev/null | tail -n 30 >&2 || true
	fi
	exit 1
}
# Each check's line says when it passed (seconds since the start), for the TCG timings.
ok() { echo "ok: [+${SECONDS}s] $*"; }
# One line per worker of a /v1/status document on stdin: its packet and connection counters.
per_worker() {
	python3 -c 'import json,sys
for w in json.load(sys.stdin)["workers"]:
    drops = ", ".join("%s %d" % (k, v) for k, v in sorted(w["drops"].items()) if v) or "none"
    print("worker %d: rx %d tx %d packets, %d connections created, redirected out %d in %d, drops: %s"
          % (w["index"], w["rx_packets"], w["tx_packets"], w["conns_created"], w["redirected_out"],
             w["redirected_in"], drops))'
}
vm() { "$HERE/vm.sh" ssh "$@"; }

debs="$TARGET/debian"
deb=$("$HERE/package.sh" --no-build --no-lintian --out "$debs" | tail -n 1)
deb_next=$("$HERE/package.sh" --no-build --no-lintian --out "$debs/next" \
	--version "$(dpkg-deb -f "$deb" Version)+vmtest1" | tail -n 1)
if [ $rebuild = 1 ] || [ ! -f "$RVS_VM_IMAGE" ]; then
	echo "vm-test: building the image $RVS_VM_IMAGE with $(basename "$deb")" >&2
	"$HERE/image.sh" --deb "$deb" --config "$ROOT/config/lab-vm.toml" --out "$RVS_VM_IMAGE" \
		--dpdk-devices "0000:00:04.0 0000:00:05.0" --dpdk-driver uio_pci_generic >/dev/null
fi

# The lab lock from here on (the package and the image need no lab); SECONDS times the checks.
if [ $lab = 1 ]; then
	mkdir -p "$HERE/run"
	exec 8>"${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock}"
	if ! flock -n 8; then
		echo "vm-test: waiting for the lab lock (${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock})" >&2
		flock 8
	fi
	export RVS_LAB_LOCK_HELD=1
fi
SECONDS=0

# The VM off, and the real servers' daemons stopped with their routes back to the lab's
# (rs-start nat pointed them at 10.20.0.1), still under the lab lock.
cleanup() {
	[ $keep = 1 ] && return
	"$HERE/vm.sh" down >/dev/null 2>&1 || true
	[ $lab = 0 ] || "$HERE/lab.sh" rs-stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$HERE/vm.sh" down >/dev/null 2>&1 || true
if [ $lab = 1 ]; then "$HERE/vm.sh" up; else "$HERE/vm.sh" up --no-lab; fi

# --- systemd
[ "$(vm systemctl show rvsd -p ActiveState --value)" = active ] || fail "rvsd.service is not active"
status=$(vm systemctl show rvsd -p StatusText --value)
case $status in "serving: 2 worker(s) polling"*) ;; *) fail "rvsd's status line is \"$status\" (no READY=1?)" ;; esac
[ "$(vm systemctl show rvsd -p NRestarts --value)" = 0 ] || fail "rvsd restarted during boot"
ok "rvsd.service active, sd_notify status \"$status\""
vm rvsadm -Ln | grep -q '^TCP  10.10.0.100:80 rr' || fail "rvsadm -Ln inside the VM lacks TCP 10.10.0.100:80"
ok "rvsadm -Ln inside the VM lists the service"
polls=$(vm curl -s 127.0.0.1:8700/v1/status | python3 -c 'import json,sys; print(" ".join(str(w["polls"]) for w in json.load(sys.stdin)["workers"]))')
for p in $polls; do [ "$p" -gt 0 ] || fail "a worker has not polled: $polls"; done
[ "$(wc -w <<<"$polls")" = 2 ] || fail "expected 2 workers, polls: $polls"
ok "both workers poll ($polls)"

# --- lab: NAT, then DR, through the VM
# round_robin N EXPECT: N requests from lab-client to the VIP; the answering servers'
# counts, sorted by name, must be EXPECT (e.g. "10 10 10").
round_robin() {
	local counts
	counts=$(for _ in $(seq 1 "$1"); do
		ip netns exec lab-client curl -s --max-time 30 http://10.10.0.100/ | awk '{print $1}'
	done | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
	[ "$counts" = "$2" ] || fail "round robin over $1 requests: $counts (expected $2)"
	echo "$counts"
}
# transfer MODE: a 20 MB download through the VIP must be byte exact; prints curl's
# time and average rate.
transfer() {
	local want got n=20971520 file="$HERE/run/vm/transfer.bin" took
	want=$(python3 "$HERE/tools/rs_server.py" --digest $n)
	took=$(ip netns exec lab-client curl -s --max-time 900 -o "$file" -w '%{time_total} %{speed_download}' "http://10.10.0.100/bytes/$n" || true)
	got=$(sha256sum "$file" | awk '{print $1}')
	rm -f "$file"
	[ "$got" = "$want" ] || fail "$1: the 20 MB download differs (sha256 $got, expected $want)"
	awk '{printf "%.1f s, %.2f MB/s", $1, $2 / 1e6}' <<<"$took"
}
worker_forwarded() {
	vm curl -s 127.0.0.1:8700/v1/status | python3 -c 'import json,sys; print(" ".join(str(w["conns_created"]) for w in json.load(sys.stdin)["workers"]))'
}
workers() { vm curl -s 127.0.0.1:8700/v1/status | per_worker | sed 's/^/    /'; }
if [ $lab = 1 ]; then
	"$HERE/lab.sh" rs-start nat >/dev/null
	counts=$(round_robin 30 "rs1=10 rs2=10 rs3=10 ")
	ok "NAT: round robin $counts"
	rate=$(transfer NAT)
	ok "NAT: 20 MB byte exact ($rate)"
	created=$(worker_forwarded)
	for c in $created; do [ "$c" -gt 0 ] || fail "a worker created no connection (per worker: $created)"; done
	ok "both workers forwarded (connections per worker: $created)"
	workers
	vm "sed 's/forward = \"nat\"/forward = \"dr\"/' /etc/rvs/rvs.toml >/root/dr.toml && cp /etc/rvs/rvs.toml /root/nat.toml && cp /root/dr.toml /etc/rvs/rvs.toml && systemctl restart rvsd"
	"$HERE/lab.sh" rs-start dr >/dev/null
	counts=$(round_robin 30 "rs1=10 rs2=10 rs3=10 ")
	ok "DR: round robin $counts"
	rate=$(transfer DR)
	ok "DR: 20 MB byte exact ($rate)"
	workers
	vm "cp /root/nat.toml /etc/rvs/rvs.toml && systemctl restart rvsd"
	"$HERE/lab.sh" rs-start nat >/dev/null
fi

# --- reload
vm "sed -i '0,/weight = 1/s//weight = 4/' /etc/rvs/rvs.toml && systemctl reload rvsd"
vm rvsadm -Ln | grep -Eq '10.20.0.11:80 +Masq +4 ' || fail "weight 4 not in effect after systemctl reload"
ok "systemctl reload applies a changed weight"
if [ $lab = 1 ]; then
	vm "sed -i '0,/weight = 1/s//weight = 0/' /etc/rvs/rvs.toml && systemctl reload rvsd"
	counts=$(round_robin 30 "rs1=15 rs3=15 ")
	ok "after a reload with rs2's weight 0: $counts"
fi
vm "cp /etc/rvs/rvs.toml /root/good.toml && echo 'weight = \"x\"' >>/etc/rvs/rvs.toml && systemctl reload rvsd"
sleep 1
[ "$(vm systemctl show rvsd -p ActiveState --value)" = active ] || fail "a refused reload stopped rvsd"
vm systemctl show rvsd -p StatusText --value | grep -q 'refused' || fail "a refused reload is not in rvsd's status line"
vm rvsadm -Ln | grep -Eq '10.20.0.11:80 +Masq +4 ' || fail "a refused reload changed the running configuration"
ok "an invalid file on reload: refused, rvsd keeps running the previous configuration"

# --- bad input: invalid config on restart (the file still holds the duplicate key)
vm "systemctl restart rvsd" && fail "rvsd restarted with an invalid configuration"
sleep 20
[ "$(vm systemctl show rvsd -p ActiveState --value)" = failed ] || fail "rvsd is not failed with an invalid configuration"
starts=$(vm "journalctl -u rvsd -b -o cat --no-pager | grep -c 'duplicate key .weight.'" || true)
[ "$starts" -le 5 ] || fail "rvsd looped on an invalid configuration ($starts failed starts)"
vm "journalctl -u rvsd -b -o cat --no-pager | grep -q 'Start request repeated too quickly'" || fail "no start limit hit"
ok "invalid config: unit failed, the TOML error in the journal, start limit after $starts attempts"
vm "cp /root/good.toml /etc/rvs/rvs.toml && systemctl reset-failed rvsd"

# Hugepages missing: none reserved (the kernel command line's reservation forgotten, and
# rvs-hugepages told to leave it to the kernel): rvsd's preflight names the fix. Asking
# rvs-hugepages for more pages than the VM has would starve the VM, so its shortfall
# message is checked with a value it must refuse instead.
vm "sed -i 's/^RVS_HUGEPAGES=.*/RVS_HUGEPAGES=0/' /etc/default/rvs && echo 0 >/proc/sys/vm/nr_hugepages && systemctl restart rvs-hugepages"
vm "systemctl start rvsd" && fail "rvsd started without hugepages"
vm "journalctl -u rvsd -b -o cat --no-pager | grep -q 'no hugepages reserved'" || fail "rvsd's journal does not say that no hugepages are reserved"
vm "sed -i 's/^RVS_HUGEPAGES=.*/RVS_HUGEPAGES=lots/' /etc/default/rvs && systemctl restart rvs-hugepages" && fail "rvs-hugepages took RVS_HUGEPAGES=lots"
vm "journalctl -u rvs-hugepages -b -o cat --no-pager | grep -q 'RVS_HUGEPAGES=\"lots\" in /etc/default/rvs is not a number'" ||
	fail "rvs-hugepages' journal does not name the bad value"
ok "hugepages missing: rvsd fails with 'no hugepages reserved' and the fix; a bad RVS_HUGEPAGES is named"
vm "sed -i 's/^RVS_HUGEPAGES=.*/RVS_HUGEPAGES=512/' /etc/default/rvs && systemctl restart rvs-hugepages && systemctl reset-failed rvsd"

# A data NIC not bound to a DPDK driver.
vm "sed -i 's/^RVS_DPDK_DEVICES=.*/RVS_DPDK_DEVICES=\"0000:00:04.0\"/' /etc/default/rvs && echo 0000:00:05.0 >/sys/bus/pci/drivers/uio_pci_generic/unbind && echo >/sys/bus/pci/devices/0000:00:05.0/driver_override && echo 0000:00:05.0 >/sys/bus/pci/drivers_probe"
vm "systemctl start rvsd" && fail "rvsd started with a NIC the kernel owns"
vm "journalctl -u rvsd -b -o cat --no-pager | grep -q 'device .0000:00:05.0. not found'" || fail "rvsd's journal does not name the unbound device"
ok "a NIC not bound to DPDK: rvsd fails naming 0000:00:05.0"
vm "sed -i 's/^RVS_DPDK_DEVICES=.*/RVS_DPDK_DEVICES=\"0000:00:04.0 0000:00:05.0\"/' /etc/default/rvs && systemctl restart rvs-bind-nics && systemctl reset-failed rvsd && systemctl start rvsd"
[ "$(vm systemctl show rvsd -p ActiveState --value)" = active ] || fail "rvsd does not come back after the fixes"
ok "rvsd active again"

# --- package: upgrade keeps an edited conffile; purge leaves nothing
scp -q -i "$RVS_VM_IMAGE.key" -P "${RVS_VM_SSH_PORT:-2222}" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	"$deb_next" root@127.0.0.1:/root/next.deb
vm "echo '# edited by the operator' >>/etc/rvs/rvs.toml && DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /root/next.deb >/dev/null"
vm "dpkg-query -W -f '\${Version}' rvs" | grep -q 'vmtest1' || fail "the upgrade did not install"
vm "tail -n 1 /etc/rvs/rvs.toml" | grep -q 'edited by the operator' || fail "the upgrade replaced the edited /etc/rvs/rvs.toml"
ok "upgrade to $(basename "$deb_next") keeps the edited /etc/rvs/rvs.toml"
files=$(vm "dpkg -L rvs | grep -v '^/\\.\$'")
vm "systemctl stop rvsd; dpkg --purge rvs >/dev/null"
left=$(vm "for f in $(tr '\n' ' ' <<<"$files"); do [ -d \"\$f\" ] && ls -A \"\$f\" | grep -q . && continue; [ -e \"\$f\" ] && echo \"\$f\"; done; ls -d /etc/rvs /etc/default/rvs /etc/systemd/system/*.wants/rvs* 2>/dev/null" | grep -v -E '^/(usr|usr/sbin|usr/share|usr/share/doc|usr/share/man|usr/share/man/man8|usr/libexec|etc|etc/default|lib|lib/systemd|lib/systemd/system|usr/share/bash-completion|usr/share/bash-completion/completions|usr/share/zsh|usr/share/fish)$' || true)
[ -z "$left" ] || fail "dpkg --purge left: $left"
ok "dpkg --purge leaves no file behind"
echo "vm tests passed ($(cat "$HERE/run/vm/accel"))"
