# SPDX-License-Identifier: MIT
# bash completion for fdsend and fdrecv: options, their values, and SOCKET
# names found in the per-user directory. Installed once under each name.

# The words, with bash-completion's helper when it is there.
_fdsend_init()
{
	if declare -F _init_completion >/dev/null; then
		_init_completion
		return
	fi
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	words=("${COMP_WORDS[@]}")
	cword=$COMP_CWORD
}

# COMMAND from word $1 on: bash-completion's own, else commands, then files.
_fdsend_command()
{
	if declare -F _command_offset >/dev/null; then
		_command_offset "$1"
	elif (($1 == cword)); then
		COMPREPLY=($(compgen -c -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}

# The directory where a bare NAME lives (see SOCKET FORMS in fdsend(1)).
_fdsend_runtime_dir()
{
	if ((EUID == 0)); then
		printf '%s\n' /run/fdsend
	elif [[ -n $XDG_RUNTIME_DIR && -O $XDG_RUNTIME_DIR && ! -L $XDG_RUNTIME_DIR ]]; then
		printf '%s\n' "$XDG_RUNTIME_DIR/fdsend"
	else
		printf '%s\n' "/tmp/fdsend-$EUID"
	fi
}

# The names of the sockets in that directory, for SOCKET.
_fdsend_socket_names()
{
	local dir f
	dir=$(_fdsend_runtime_dir)
	for f in "$dir"/*; do
		[[ -S $f ]] && printf '%s\n' "${f##*/}"
	done
}

# SOCKET: a short name, or a path.
_fdsend_complete_socket()
{
	local cur=$1
	COMPREPLY=($(compgen -W "$(_fdsend_socket_names)" -- "$cur"))
	if [[ $cur == */* || -z $cur || $cur == .* ]]; then
		COMPREPLY+=($(compgen -f -- "$cur"))
	fi
}

_fdsend_signals()
{
	local s
	for s in HUP INT QUIT KILL USR1 USR2 TERM CONT STOP TSTP WINCH; do
		printf '%s\n' "$s"
	done
}

_fdsend()
{
	local cur prev words cword
	_fdsend_init || return
	case $prev in
	-m | --mode)
		COMPREPLY=($(compgen -W 'r r+ w' -- "$cur"))
		return ;;
	-t | --timeout | --count | --backlog | -p | --pid | --fdname | \
		--socket-mode | --allow-uid | -f | --fd)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '-a --abstract -b --blocking -f --fd --fdname
			--no-ack -t --timeout -L --listen-fds -p --pid -d --dup -m --mode
			--serve --count --backlog --allow-uid --socket-mode --nonblock
			-v --verbose
			-h --help -V --version' -- "$cur"))
		return
	fi
	# the first word that is not an option is SOCKET, then FDs
	local i arg=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-t | --timeout | --count | --backlog | -p | --pid | --fdname | -m | \
			--mode | --socket-mode | --allow-uid | -f | --fd) ((i++)) ;;
		-*) ;;
		*) ((arg++)) ;;
		esac
	done
	if ((arg == 0)); then
		_fdsend_complete_socket "$cur"
	else
		COMPREPLY=($(compgen -W 'tcp: udp: unix:' -- "$cur"))
		compopt -o nospace
	fi
}

_fdrecv()
{
	local cur prev words cword
	_fdsend_init || return
	case $prev in
	--stop-signal)
		COMPREPLY=($(compgen -W "$(_fdsend_signals)" -- "$cur"))
		return ;;
	--ready)
		COMPREPLY=($(compgen -W 'notify exec pidfile:' -- "$cur"))
		[[ $COMPREPLY == pidfile: ]] && compopt -o nospace
		return ;;
	--export)
		COMPREPLY=($(compgen -W 'systemd nginx einhorn none' -- "$cur"))
		return ;;
	--replace)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	-t | --timeout | -n | --count | -f | --fd | --socket-mode | --allow-uid | \
		--ready-timeout | --stop-timeout)
		return ;;
	esac
	local i arg=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-- | --run | -r)
			# COMMAND and its arguments
			_fdsend_command $((i + 1))
			return ;;
		--stop-signal | --ready | --export | --replace | -t | --timeout | -n | \
			--count | -f | --fd | --socket-mode | --allow-uid | \
			--ready-timeout | --stop-timeout) ((i++)) ;;
		-*) ;;
		*)
			if ((arg++ == 1)); then
				_fdsend_command "$i"
				return
			fi ;;
		esac
	done
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '-a --abstract -c --connect -n --count -f --fd
			-i --stdin -o --stdout -e --stderr -t --timeout -r --run
			--allow-uid --socket-mode --json --export --set-nonblock --clear-nonblock
			--ready --replace --ready-timeout --stop-signal --stop-timeout
			-h --help -V --version' -- "$cur"))
	elif ((arg == 0)); then
		_fdsend_complete_socket "$cur"
	else
		COMPREPLY=($(compgen -W '-- --run' -- "$cur"))
	fi
}

complete -F _fdsend fdsend
complete -F _fdrecv fdrecv
