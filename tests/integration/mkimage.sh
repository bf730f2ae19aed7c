#!/bin/bash
# mkimage.sh DIR — build the "busybox" image as a plain directory: DIR/busybox/.
#
# kubexec-node resolves `image: busybox` to IMAGE_DIR/busybox/ and uses it as the
# container's root filesystem, so an image is nothing more than a tree. We build it
# from Debian's busybox-static (a static binary needs no /lib in the image), with one
# symlink per applet in /bin so every command a test uses (sh, cat, stty, tty,
# hostname, sleep, ...) resolves through PATH.
#
# Idempotent: running it again over an existing image only fixes what is missing or
# stale, so tests can call it every time. Files other tools add (markers) are kept.
set -euo pipefail

usage() { echo "usage: $0 IMAGE_DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
[ -n "$1" ] || usage

BUSYBOX=${KUBEXEC_BUSYBOX:-/bin/busybox}
if [ ! -x "$BUSYBOX" ]; then
	echo "mkimage: $BUSYBOX not found; install Debian's busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi
# A dynamically linked busybox would not run inside an image without its libraries.
if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
	echo "mkimage: $BUSYBOX is not statically linked; install busybox-static" >&2
	exit 1
fi

root=$1/busybox
mkdir -p "$root"
for d in bin etc proc sys dev tmp root; do
	mkdir -p "$root/$d"
done
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

# Copy only when the content differs, so a rerun does not touch a running image.
if ! cmp -s "$BUSYBOX" "$root/bin/busybox"; then
	cp "$BUSYBOX" "$root/bin/busybox.new"
	chmod 0755 "$root/bin/busybox.new"
	mv -f "$root/bin/busybox.new" "$root/bin/busybox"
fi

applets=$("$BUSYBOX" --list)
[ -n "$applets" ] || { echo "mkimage: '$BUSYBOX --list' printed nothing" >&2; exit 1; }
for a in $applets; do
	case $a in
	busybox|*/*|'') continue ;;
	esac
	if [ "$(readlink "$root/bin/$a" 2>/dev/null || true)" != busybox ]; then
		ln -sfn busybox "$root/bin/$a"
	fi
done

write_if_changed() { # FILE CONTENT
	if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
		printf '%s\n' "$2" >"$1.new"
		mv -f "$1.new" "$1"
	fi
}
write_if_changed "$root/etc/passwd" "root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false"
write_if_changed "$root/etc/group" "root:x:0:
nogroup:x:65534:"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
