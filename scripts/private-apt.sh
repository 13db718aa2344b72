# SPDX-License-Identifier: Apache-2.0
#
# Sourced by scripts/fetch-debs.sh and bench/fetch-mkfs-erofs.sh: a private
# apt configuration for another suite of the mirror this machine already
# uses. The system's apt sources and state are never touched.
#
#   private_apt_setup DIR SUITE TYPES    (TYPES: deb or deb-src)
#
# makes DIR/{etc,state,cache}, writes DIR/etc/sources.list.d/SUITE.sources (SUITE-src for deb-src)
# and sets PRIVATE_APT_URI (the mirror) and the array PRIVATE_APT_OPTS (apt-get's
# -o options that point it at DIR). Returns 1, with a message, when no Debian
# mirror is configured.

private_apt_setup() {
	local dir=$1 suite=$2 types=$3 name=$2
	[ "$types" = deb ] || name=$suite-src
	PRIVATE_APT_URI=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	if [ -z "$PRIVATE_APT_URI" ]; then
		PRIVATE_APT_URI=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	fi
	if [ -z "$PRIVATE_APT_URI" ]; then
		echo "private-apt: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2
		return 1
	fi
	mkdir -p "$dir/etc/sources.list.d" "$dir/etc/preferences.d" "$dir/state/lists/partial" \
		"$dir/cache/archives/partial"
	cat >"$dir/etc/sources.list.d/$name.sources" <<EOT
Types: $types
URIs: $PRIVATE_APT_URI
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	: >"$dir/state/status"
	PRIVATE_APT_OPTS=(
		-o "Dir::Etc::SourceList=/dev/null"
		-o "Dir::Etc::SourceParts=$dir/etc/sources.list.d"
		-o "Dir::Etc::Preferences=/dev/null"
		-o "Dir::Etc::PreferencesParts=$dir/etc/preferences.d"
		-o "Dir::State=$dir/state"
		-o "Dir::State::Lists=$dir/state/lists"
		-o "Dir::State::status=$dir/state/status"
		-o "Dir::Cache=$dir/cache"
		-o "APT::Architecture=amd64"
		-o "APT::Architectures::=amd64"
		-o "APT::Sandbox::User=root"
		-o "Acquire::Languages=none"
	)
}
