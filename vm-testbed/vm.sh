#!/usr/bin/env bash
# The VM testbed: the rvs appliance image (vm-testbed/image.sh) under qemu, in lab-lb1's
# place in the netns lab (vm-testbed/lab.sh).
#
#   vm-testbed/vm.sh up [--image FILE] [--tcg] [--no-lab]
#                                                 boot the VM; returns once rvsd is active inside
#   vm-testbed/vm.sh down                         power it off, remove the taps
#   vm-testbed/vm.sh ssh [COMMAND...]             a shell (or COMMAND) in the VM as root
#   vm-testbed/vm.sh status                       qemu, accelerator, taps, rvsd in the VM
#
# The VM (q35, UEFI firmware from the ovmf package, 3 vCPUs, 2 GB):
# The serial console (root logged in) is the socket $RUN/console.sock (socat - UNIX:...),
# logged to $RUN/console.log.
#   00:03.0  virtio-net  management: qemu user networking, SSH on 127.0.0.1:$RVS_VM_SSH_PORT
#                        (default 2222) with the image's key (IMAGE.key)
#   00:04.0  virtio-net  tap rvsvm-front on lab-front, MAC 02:00:00:00:03:01, 2 queue pairs, RSS
#   00:05.0  virtio-net  tap rvsvm-back  on lab-back,  MAC 02:00:00:00:03:02, 2 queue pairs, RSS
# The image binds 00:04.0 and 00:05.0 to uio_pci_generic at boot and rvsd drives them
# with DPDK's virtio PMD, with the addresses of lab-lb1 (config/lab-vm.toml); lab-lb1's own
# rvsd is stopped first. KVM is used when /dev/kvm really works (probed), otherwise TCG
# (much slower); `up` says which. The disk is a qcow2 overlay on the image (the image stays
# as built); `down` drops it. With --no-lab the taps stay unplugged in the root namespace
# and the lab is not touched (no lock taken): boot, systemd and DPDK on virtio can be
# checked while someone else uses the lab.
#
# The taps are created in the root namespace (qemu opens them there), then moved into the
# lab's switch namespace (lab-sw) and enslaved to the bridges. Everything that touches the
# lab holds the lab lock (flock on /run/lock/rvs-lab.lock, one per host, as rvs-labtests does;
# RVS_LAB_LOCK names another lock file).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN="$HERE/run/vm"
IMAGE=${RVS_VM_IMAGE:-$RUN/rvs-appliance.img}
SSH_PORT=${RVS_VM_SSH_PORT:-2222}
SW=lab-sw
TAPS=(rvsvm-front:lab-front:02:00:00:00:03:01:0x4 rvsvm-back:lab-back:02:00:00:00:03:02:0x5)
BOOT_TIMEOUT=${RVS_VM_BOOT_TIMEOUT:-600}
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

log() { printf 'vm: %s\n' "$*" >&2; }
die() {
	printf 'vm: %s\n' "$*" >&2
	exit 1
}

# Holds the lab lock for the rest of this script (fd 9).
lab_lock() {
	# A caller that already holds it (vm-test.sh) says so.
	[ -z "${RVS_LAB_LOCK_HELD:-}" ] || return 0
	mkdir -p "$HERE/run"
	exec 9>"${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock}"
	if ! flock -n 9; then
		log "waiting for the lab lock (${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock})"
		flock 9
	fi
}

key_file() {
	local k=${RVS_VM_KEY:-$IMAGE.key}
	[ -f "$k" ] || die "no SSH key $k (image.sh writes IMAGE.key; or set RVS_VM_KEY)"
	echo "$k"
}

vm_ssh() {
	ssh -q -i "$(key_file)" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ConnectTimeout=5 -o BatchMode=yes root@127.0.0.1 "$@"
}

running() { [ -f "$RUN/qemu.pid" ] && kill -0 "$(cat "$RUN/qemu.pid")" 2>/dev/null; }

# Whether KVM works here: /dev/kvm usable, and the firmware the VM boots runs under it for
# a few seconds. Opening /dev/kvm is not enough: some nested hypervisors create KVM
# machines but stop on the first x87 instruction of OVMF ("paused (internal-error)").
kvm_works() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	local vars status
	vars=$(mktemp)
	cp "$OVMF_VARS" "$vars"
	status=$( (
		sleep 4
		echo "info status"
		echo quit
	) | timeout 30 qemu-system-x86_64 -accel kvm -M q35 -cpu host -nodefaults -display none -no-user-config \
		-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,file=$vars" \
		-monitor stdio 2>/dev/null | tr -d '\r' | grep -a -o 'VM status: [a-z() -]*' || true)
	rm -f "$vars"
	if [ "$status" != "VM status: running" ]; then
		KVM_WHY="KVM stops the firmware (${status:-no answer})"
		return 1
	fi
}

cmd_up() {
	local tcg=0 lab=1
	while [ $# -gt 0 ]; do
		case $1 in
		--image) IMAGE=$2; shift ;;
		--tcg) tcg=1 ;;
		--no-lab) lab=0 ;;
		*) die "up: unknown argument \`$1'" ;;
		esac
		shift
	done
	command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
	[ -f "$OVMF_CODE" ] || die "$OVMF_CODE is missing: apt-get install ovmf"
	[ -f "$IMAGE" ] || die "no image $IMAGE: build it with vm-testbed/image.sh --config config/lab-vm.toml --dpdk-devices \"0000:00:04.0 0000:00:05.0\""
	running && die "the VM already runs (pid $(cat "$RUN/qemu.pid")); vm.sh down first"
	mkdir -p "$RUN"

	local accel cpu
	if [ $tcg = 0 ] && kvm_works; then
		accel=kvm cpu=host
		log "accelerator: KVM (/dev/kvm works)"
	else
		accel=tcg cpu=max
		log "accelerator: TCG (software emulation: $([ $tcg = 1 ] && echo '--tcg' || echo "${KVM_WHY:-/dev/kvm missing or not accessible}"); boot and forwarding are slow)"
	fi
	echo "$accel" >"$RUN/accel"

	if [ $lab = 1 ]; then
		lab_lock
		"$HERE/lab.sh" up >/dev/null
		"$HERE/lab.sh" stop-lb lb1 >/dev/null 2>&1 || true
	fi
	echo "$lab" >"$RUN/lab"

	rm -f "$RUN/disk.qcow2"
	qemu-img create -q -f qcow2 -b "$(readlink -f "$IMAGE")" -F raw "$RUN/disk.qcow2"
	cp "$OVMF_VARS" "$RUN/OVMF_VARS.fd"
	local nics=() t name br mac addr
	for t in "${TAPS[@]}"; do
		IFS=: read -r name br m1 m2 m3 m4 m5 m6 addr <<<"$t"
		mac="$m1:$m2:$m3:$m4:$m5:$m6"
		ip link del "$name" 2>/dev/null || true
		ip netns exec "$SW" ip link del "$name" 2>/dev/null || true
		ip tuntap add dev "$name" mode tap multi_queue
		nics+=(-netdev "tap,id=$name,ifname=$name,script=no,downscript=no,queues=2"
			-device "virtio-net-pci,netdev=$name,mac=$mac,mq=on,rss=on,vectors=6,addr=$addr")
	done
	qemu-system-x86_64 -name rvs-appliance -accel "$accel" -M q35 -cpu "$cpu" -smp 3 -m 2048 \
		-nodefaults -no-user-config -display none \
		-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" \
		-drive "if=pflash,format=raw,file=$RUN/OVMF_VARS.fd" \
		-drive "file=$RUN/disk.qcow2,if=virtio,format=qcow2" \
		-netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
		-device "virtio-net-pci,netdev=mgmt,addr=0x3" \
		"${nics[@]}" \
		-chardev "socket,id=console,path=$RUN/console.sock,server=on,wait=off,logfile=$RUN/console.log" \
		-serial chardev:console -monitor "unix:$RUN/monitor.sock,server,nowait" \
		-pidfile "$RUN/qemu.pid" -daemonize
	# qemu holds the taps now: move them into the lab's switch namespace and plug them in.
	for t in "${TAPS[@]}"; do
		IFS=: read -r name br _ <<<"$t"
		if [ $lab = 1 ]; then
			ip link set "$name" netns "$SW"
			ip netns exec "$SW" ip link set "$name" master "$br" up
		else
			ip link set "$name" up
		fi
	done
	if [ $lab = 1 ]; then
		# The lab's hosts may still map 10.10.0.1 and 10.20.0.1 to lab-lb1's MACs (the lab
		# was up before): forget them, so that they ask again and find the VM's.
		local ns
		for ns in lab-client lab-rs1 lab-rs2 lab-rs3 lab-router; do
			ip netns exec "$ns" ip neigh flush all 2>/dev/null || true
		done
	fi
	log "qemu started (pid $(cat "$RUN/qemu.pid")), console in $RUN/console.log; waiting for SSH"
	local deadline=$((SECONDS + BOOT_TIMEOUT))
	until vm_ssh true 2>/dev/null; do
		running || die "qemu exited during boot; see $RUN/console.log"
		[ $SECONDS -lt $deadline ] || die "no SSH after ${BOOT_TIMEOUT}s; see $RUN/console.log"
		sleep 2
	done
	log "SSH up; waiting for rvsd.service"
	until vm_ssh systemctl is-active --quiet rvsd; do
		if vm_ssh systemctl is-failed --quiet rvsd; then
			vm_ssh journalctl -b -u rvs-hugepages -u rvs-bind-nics -u rvsd --no-pager | tail -n 30 >&2
			die "rvsd.service failed in the VM (journal above)"
		fi
		[ $SECONDS -lt $deadline ] || die "rvsd not active after ${BOOT_TIMEOUT}s"
		sleep 2
	done
	log "rvsd is active in the VM ($accel)"
}

cmd_down() {
	[ "$(cat "$RUN/lab" 2>/dev/null || echo 1)" = 0 ] || lab_lock
	if running; then
		local pid
		pid=$(cat "$RUN/qemu.pid")
		vm_ssh poweroff 2>/dev/null || true
		for _ in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		kill "$pid" 2>/dev/null || true
		log "VM stopped"
	fi
	local t name
	for t in "${TAPS[@]}"; do
		name=${t%%:*}
		ip netns exec "$SW" ip link del "$name" 2>/dev/null || true
		ip link del "$name" 2>/dev/null || true
	done
	rm -f "$RUN/qemu.pid" "$RUN/disk.qcow2" "$RUN/OVMF_VARS.fd" "$RUN/monitor.sock" "$RUN/console.sock" "$RUN/accel" "$RUN/lab"
}

cmd_status() {
	if running; then
		echo "qemu: running (pid $(cat "$RUN/qemu.pid"), $(cat "$RUN/accel" 2>/dev/null || echo '?'))"
	else
		echo "qemu: not running"
		return 0
	fi
	local t name
	for t in "${TAPS[@]}"; do
		name=${t%%:*}
		ip netns exec "$SW" ip -br link show "$name" 2>/dev/null || ip -br link show "$name" 2>/dev/null || echo "$name: missing"
	done
	vm_ssh systemctl --no-pager status rvsd | head -n 5 || echo "rvsd: SSH not answering"
}

case ${1:-} in
up) shift && cmd_up "$@" ;;
down) cmd_down ;;
ssh)
	shift
	if [ $# -eq 0 ]; then exec ssh -i "$(key_file)" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1; fi
	vm_ssh "$@"
	;;
status) cmd_status ;;
*)
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
	;;
esac
