# bash completion for ckpt(1), the command-line tool of ckptfs.
#
# Installed as share/bash-completion/completions/ckpt, which bash-completion
# loads the first time "ckpt" is completed; it needs nothing from
# bash-completion, so "source completions/ckpt.bash" works too.
#
# Offers the commands, the options of each command (keep them in step with
# 'ckpt --help': tests/integration/test_install.py checks it), the modes
# after --enc-mode and --out-enc-mode, the formats after --format,
# *.ckpt and *.safetensors files (and directories to
# walk into) for FILE, IN and OUT, *.json files after --name-map, nothing
# after --include, --exclude, --rename, --dtype and --shape, the parameter
# names of FILE for 'ckpt cat FILE NAME...', for the NAMEs of get, rm and
# set and put, and the OLD of mv (a plain FILE: no key is read here), and
# directories for the MOUNTPOINT of 'ckpt umount' and 'ckpt commit'.

_ckpt_reply()	# LINES: COMPREPLY = the lines of LINES (no expansion)
{
	COMPREPLY=()
	[[ -n $1 ]] && mapfile -t COMPREPLY <<<"$1"
}

_ckpt_files()	# CUR: *.ckpt and *.safetensors files and directories
{
	compopt -o filenames 2>/dev/null
	_ckpt_reply "$(compgen -f -X '!*.ckpt' -- "$1"
		compgen -f -X '!*.safetensors' -- "$1"; compgen -d -- "$1")"
}

_ckpt_dirs()	# CUR: directories
{
	compopt -o filenames 2>/dev/null
	_ckpt_reply "$(compgen -d -- "$1")"
}

_ckpt_anyfile()	# CUR: any file (a key file)
{
	compopt -o filenames 2>/dev/null
	_ckpt_reply "$(compgen -f -- "$1")"
}

_ckpt_params()	# FILE CUR: the parameter names of a plain checkpoint FILE
{
	local file=${1/#\~/$HOME} names n q
	[[ -f $file ]] || return
	names=$(command ckpt ls -- "$file" 2>/dev/null </dev/null) || return
	# names come from the file: matched as text, never given to compgen
	# -W (which expands them), and quoted for the command line
	COMPREPLY=()
	while IFS= read -r n; do
		[[ $n == "$2"* ]] || continue
		printf -v q '%q' "$n"
		COMPREPLY+=("$q")
	done <<<"$names"
}

_ckpt()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= i w
	local -a args=()
	local modes="AES-GCM AES-CBC SM4-CBC"
	local key_opts="--enc-mode --keyfile --keyfd --ignore-crc --format"
	local out_opts="--out-enc-mode --out-keyfile --out-keyfd --decrypt
			--crc --no-crc --no-reflink --skip-unrepresentable --rename --name-map
			-q --quiet"
	local formats="ckpt safetensors"
	local sel_opts="--include --exclude"
	local edit_opts="${key_opts/--ignore-crc /} --crc --no-crc --no-reflink -q --quiet"
	local help_opts="-h --help -V --version"

	COMPREPLY=()
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# --opt=VALUE: bash splits it at '=' (COMP_WORDBREAKS)
	if [[ $cur == = ]]; then
		cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	fi

	# the command and the arguments before the cursor (options skipped,
	# with the argument of those that take one)
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--enc-mode | --out-enc-mode | --keyfile | --out-keyfile | \
			--keyfd | --out-keyfd | --include | --exclude | \
			--rename | --name-map | --format | --dtype | --shape)
			[[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
			((i++))
			;;
		-* | =) ;;
		*)
			if [[ -z $cmd ]]; then cmd=$w; else args+=("$w"); fi
			;;
		esac
	done

	case $prev in
	--enc-mode | --out-enc-mode)
		_ckpt_reply "$(compgen -W "$modes" -- "$cur")"
		return
		;;
	--keyfile | --out-keyfile)
		_ckpt_anyfile "$cur"
		return
		;;
	--keyfd | --out-keyfd)
		return	# a descriptor number
		;;
	--format)
		_ckpt_reply "$(compgen -W "$formats" -- "$cur")"
		return
		;;
	--include | --exclude | --rename | --dtype | --shape)
		return	# a glob, a substitution, a dtype, a shape
		;;
	--name-map)
		compopt -o filenames 2>/dev/null
		_ckpt_reply "$(compgen -f -X '!*.json' -- "$cur"
			compgen -d -- "$cur")"
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			_ckpt_reply "$(compgen -W "$help_opts" -- "$cur")"
		else
			_ckpt_reply "$(compgen -W "ls cat get info verify convert
					diff rm mv set put edit commit umount" \
					-- "$cur")"
		fi
		return
	fi

	if [[ $cur == -* ]]; then
		case $cmd in
		ls) w="-l --json $key_opts $sel_opts" ;;
		info) w="--json $key_opts $sel_opts" ;;
		cat | get) w="$key_opts --npy" ;;
		verify) w=$key_opts ;;
		rm) w=$edit_opts ;;
		mv | edit) w="$edit_opts --force" ;;
		set) w="$edit_opts --dtype --shape" ;;
		put) w="$edit_opts --dtype --shape --npy" ;;
		convert) w="$key_opts $out_opts $sel_opts" ;;
		diff) w="$key_opts $out_opts --param --atol --rtol --equal-nan
			--json -q --quiet" ;;
		commit) w="-q --quiet" ;;
		umount) w="-q --quiet --force" ;;
		*) w= ;;
		esac
		_ckpt_reply "$(compgen -W "$w -h --help" -- "$cur")"
		return
	fi

	case $cmd in
	ls | info | verify)
		((${#args[@]} == 0)) && _ckpt_files "$cur"
		;;
	cat | rm)
		if ((${#args[@]} == 0)); then
			_ckpt_files "$cur"
		else
			_ckpt_params "${args[0]}" "$cur"
		fi
		;;
	get | set | put | mv)
		if ((${#args[@]} == 0)); then
			_ckpt_files "$cur"
		elif ((${#args[@]} == 1)); then
			_ckpt_params "${args[0]}" "$cur"
		fi
		;;
	edit)
		((${#args[@]} == 0)) && _ckpt_files "$cur"
		;;
	convert | diff)
		((${#args[@]} < 2)) && _ckpt_files "$cur"
		;;
	commit | umount)
		((${#args[@]} == 0)) && _ckpt_dirs "$cur"
		;;
	esac
	return 0
}

complete -F _ckpt ckpt
