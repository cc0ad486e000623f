#!/usr/bin/env bash
# Builds the rvs appliance: a bootable Debian 12 (bookworm) disk image with rvs installed.
#
#   vm-testbed/image.sh [--deb FILE] [--out FILE] [--size SIZE] [--config FILE]
#                       [--dpdk-devices "PCI ..."] [--hugepages N] [--mirror URL]
#                       [--ssh-key FILE.pub] [--dpdk-driver vfio-pci|uio_pci_generic]
#
# * mmdebstrap installs bookworm from MIRROR (default: the first deb.debian.org-style URI
#   of this machine's apt sources, else http://deb.debian.org/debian) with the kernel,
#   systemd, openssh-server, curl, DPDK (its drivers and dpdk-devbind), then the rvs .deb
#   (built by vm-testbed/package.sh when --deb is not given) is installed with apt inside
#   the tree (mmdebstrap's --include cannot take a local .deb in root mode);
# * boot: a GPT disk with an EFI system partition holding a standalone GRUB
#   (EFI/BOOT/BOOTX64.EFI, the removable-media path every UEFI firmware tries) that loads
#   /vmlinuz from the ext4 root (label rvsroot) with a serial console (ttyS0, 115200) and
#   hugepages=N on the kernel command line (default 512 x 2 MB);
# * DPDK: vfio-pci and uio_pci_generic load at boot; the NICs in --dpdk-devices go to
#   RVS_DPDK_DEVICES of /etc/default/rvs, and rvs-bind-nics.service binds them to
#   --dpdk-driver (default uio_pci_generic: Debian's kernel has no vfio no-IOMMU mode, so
#   vfio-pci needs an IOMMU) before networking; every other NIC is the
#   kernel's: systemd-networkd runs DHCP on it (the management interface);
# * --config FILE becomes /etc/rvs/rvs.toml (otherwise the package's safe example); rvsd
#   is enabled and starts at boot;
# * root logs in with the SSH key (--ssh-key, default: a key pair generated next to the
#   image, IMAGE.key and IMAGE.key.pub), and on the serial console without a password.
#
# The image is raw (default vm-testbed/run/vm/rvs-appliance.img, 3G sparse): `dd` it to a
# server's disk, or boot it with vm-testbed/vm.sh. Needs root, mmdebstrap, mtools,
# dosfstools, e2fsprogs, fdisk (sfdisk).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/vm-testbed/run/vm/rvs-appliance.img"
SIZE=3G
DEB=
CONFIG=
DEVICES=
DRIVER=uio_pci_generic
HUGEPAGES=512
KEY=
MIRROR=
while [ $# -gt 0 ]; do
	case $1 in
	--deb) DEB=$2; shift ;;
	--out) OUT=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--config) CONFIG=$2; shift ;;
	--dpdk-devices) DEVICES=$2; shift ;;
	--dpdk-driver) DRIVER=$2; shift ;;
	--hugepages) HUGEPAGES=$2; shift ;;
	--ssh-key) KEY=$2; shift ;;
	--mirror) MIRROR=$2; shift ;;
	-h | --help)
		sed -n '2,30s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "image.sh: unknown argument \`$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

die() {
	echo "image.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap's root mode and chroot)"
for t in mmdebstrap:mmdebstrap mcopy:mtools mkfs.vfat:dosfstools mke2fs:e2fsprogs sfdisk:fdisk; do
	command -v "${t%%:*}" >/dev/null || die "${t%%:*} is missing: apt-get install ${t#*:}"
done
case $HUGEPAGES in '' | *[!0-9]*) die "--hugepages $HUGEPAGES is not a number of pages" ;; esac
case $DRIVER in vfio-pci | uio_pci_generic) ;; *) die "--dpdk-driver $DRIVER: vfio-pci or uio_pci_generic" ;; esac
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "--config $CONFIG: no such file"

if [ -z "$MIRROR" ]; then
	MIRROR=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
		awk '{print $2}' | head -n 1 || true)
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
if [ -z "$DEB" ]; then
	DEB=$("$ROOT/vm-testbed/package.sh" --no-lintian | tail -n 1)
fi
[ -f "$DEB" ] || die "--deb $DEB: no such file"
DEB=$(readlink -f "$DEB")

mkdir -p "$(dirname "$OUT")"
if [ -z "$KEY" ]; then
	KEY="$OUT.key.pub"
	[ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C rvs-appliance -f "$OUT.key"
fi
[ -f "$KEY" ] || die "--ssh-key $KEY: no such file"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/rvs-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/root"

# Configuration written into the tree by the customize hook (below, in order).
cat >"$work/grub.cfg" <<EOF
set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --label rvsroot --set root
linux /vmlinuz root=LABEL=rvsroot ro console=tty0 console=ttyS0,115200n8 hugepages=$HUGEPAGES
initrd /initrd.img
boot
EOF
cat >"$work/mgmt.network" <<'EOF'
# The management interface: every NIC the kernel keeps (the data NICs are bound to a
# DPDK driver by rvs-bind-nics.service before networking starts).
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF

echo "image.sh: mmdebstrap bookworm from $MIRROR into $rootfs" >&2
mmdebstrap --mode=root --variant=minbase --format=directory \
	--include=linux-image-amd64,systemd-sysv,udev,kmod,openssh-server,curl,iproute2,procps,dpdk,grub-efi-amd64-bin \
	--aptopt='APT::Install-Recommends "false"' \
	--customize-hook="cp $DEB \"\$1/tmp/rvs.deb\" && chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/rvs.deb && rm \"\$1/tmp/rvs.deb\"" \
	--customize-hook='echo rvs-appliance >"$1/etc/hostname"' \
	--customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 rvs-appliance\n" >"$1/etc/hosts"' \
	--customize-hook='echo "LABEL=rvsroot / ext4 defaults,errors=remount-ro 0 1" >"$1/etc/fstab"' \
	--customize-hook="cp $work/mgmt.network \"\$1/etc/systemd/network/10-mgmt.network\"" \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd rvsd rvs-hugepages rvs-bind-nics' \
	--customize-hook='printf "vfio-pci\nuio_pci_generic\n" >"$1/etc/modules-load.d/rvs-dpdk.conf"' \
	--customize-hook="sed -i 's|^RVS_DPDK_DEVICES=.*|RVS_DPDK_DEVICES=\"$DEVICES\"|; s|^RVS_DPDK_DRIVER=.*|RVS_DPDK_DRIVER=\"$DRIVER\"|; s|^RVS_HUGEPAGES=.*|RVS_HUGEPAGES=$HUGEPAGES|' \"\$1/etc/default/rvs\"" \
	--customize-hook="mkdir -p -m 0700 \"\$1/root/.ssh\" && install -m 0600 $KEY \"\$1/root/.ssh/authorized_keys\"" \
	--customize-hook='passwd --root "$1" -d root >/dev/null' \
	--customize-hook='mkdir -p "$1/etc/systemd/system/serial-getty@ttyS0.service.d" && printf "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %%I \$TERM\n" >"$1/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"' \
	${CONFIG:+--customize-hook="install -m 0644 $(readlink -f "$CONFIG") \"\$1/etc/rvs/rvs.toml\""} \
	--customize-hook="install -m 0644 $work/grub.cfg \"\$1/tmp/grub.cfg\" && chroot \"\$1\" grub-mkstandalone -O x86_64-efi --modules='part_gpt ext2 search_label serial linux' -o /tmp/BOOTX64.EFI boot/grub/grub.cfg=/tmp/grub.cfg && mv \"\$1/tmp/BOOTX64.EFI\" $work/BOOTX64.EFI && rm \"\$1/tmp/grub.cfg\"" \
	--customize-hook='test -e "$1/vmlinuz" || ln -s "$(cd "$1/boot" && ls vmlinuz-* | tail -n 1 | sed "s|^|boot/|")" "$1/vmlinuz"' \
	--customize-hook='test -e "$1/initrd.img" || ln -s "$(cd "$1/boot" && ls initrd.img-* | tail -n 1 | sed "s|^|boot/|")" "$1/initrd.img"' \
	--customize-hook='rm -f "$1/etc/ssh/ssh_host_"*' \
	--customize-hook='mkdir -p "$1/etc/systemd/system/ssh.service.d" && printf "[Service]\n# Host keys are made on first boot (each appliance its own), before sshd -t checks them.\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n" >"$1/etc/systemd/system/ssh.service.d/hostkeys.conf"' \
	--customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
	bookworm "$rootfs" "$MIRROR" >&2

[ -f "$work/BOOTX64.EFI" ] || die "grub-mkstandalone made no BOOTX64.EFI"

# The disk: GPT, a 64 MiB EFI system partition from 1 MiB, the root filesystem after it.
esp_mib=64
total_mib=$(numfmt --from=iec "$SIZE" | awk '{printf "%d", $1 / 1048576}')
root_mib=$((total_mib - esp_mib - 2))
[ "$root_mib" -gt 1024 ] || die "--size $SIZE is too small (at least 1.1G)"
rm -f "$OUT.tmp"
truncate -s "${total_mib}M" "$OUT.tmp"
sfdisk --quiet "$OUT.tmp" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"
start=$((1 + esp_mib))MiB, size=${root_mib}MiB, type=0FC63DAF-8483-4772-8E7D-3DE69709C2E4, name="rvsroot"
EOF
mkfs.vfat -C -n RVSESP "$work/esp.img" $((esp_mib * 1024)) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mke2fs -q -t ext4 -L rvsroot -d "$rootfs" "$work/root.img" "${root_mib}M"
dd if="$work/esp.img" of="$OUT.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$OUT.tmp" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
mv "$OUT.tmp" "$OUT"
echo "image.sh: $(dpkg-deb -f "$DEB" Package)_$(dpkg-deb -f "$DEB" Version) installed; kernel $(readlink "$rootfs/vmlinuz")" >&2
echo "$OUT"
