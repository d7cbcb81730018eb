#!/bin/sh
# Contender (d): the shell loop a user writes with Debian's inotify-tools and
# libvips-tools. One vipsthumbnail process per file, one file at a time (each
# uses libvips' own threads). Files renamed into place (moved_to) or closed
# after writing (close_write) are taken.
#
#   sh bench/contenders/inotify-vips.sh IN_DIR OUT_DIR   (inotifywait prints "Watches established." on stderr)
in="$1"; out="$2"
inotifywait -m -e close_write -e moved_to --format '%f' "$in" | while IFS= read -r f; do
  vipsthumbnail "$in/$f" -s 720x588 -o "$out/%s.jpg[Q=80,strip]"
done
