#!/usr/bin/env bash
# Re-create the bundled demo clips: synthesized by espeak-ng (Debian package espeak-ng),
# converted to 16 kHz mono 16-bit PCM with sox. Nothing here comes from any corpus.
set -euo pipefail
cd "$(dirname "$0")"
make_clip() {  # make_clip OUT.wav "text"
  espeak-ng -v en-us -s 140 -w "/tmp/$1.raw.wav" "$2"
  sox "/tmp/$1.raw.wav" -r 16000 -c 1 -b 16 "$1"
  rm -f "/tmp/$1.raw.wav"
}
make_clip we_call_it_bear.wav "We call it bear."
make_clip the_sun_is_shining.wav "The sun is shining today."
