# Export the keys of secrets/credentials.txt (or the file given) into the current shell (bash; zsh too):
#   source tools/env.sh [path]
# Same syntax as harness/infra/secrets.py (KEY=VALUE, comments, quotes, `export `); empty values are skipped and
# the file's values replace exported ones. Prints nothing on success and never echoes a value; an error
# is one line on stderr (status 2).
_harness_env_status=1
if [ -n "${BASH_VERSION:-}" ]; then
  [ "${BASH_SOURCE[0]}" = "$0" ] || _harness_env_status=0
elif [ -n "${ZSH_VERSION:-}" ]; then
  case "${ZSH_EVAL_CONTEXT:-}" in *:file*) _harness_env_status=0 ;; esac
fi
if [ "$_harness_env_status" != 0 ]; then
  unset _harness_env_status
  echo "tools/env.sh must be sourced from bash or zsh, not executed: run 'source tools/env.sh [path]'" >&2
  return 1 2>/dev/null || exit 1
fi

_harness_env_root="$(CDPATH='' cd -P -- "$(dirname -- "${BASH_SOURCE[0]:-$0}")/.." >/dev/null && pwd)"
_harness_env_load() {
  local out
  [ -n "$_harness_env_root" ] || return 2
  out="$(PYTHONPATH="$_harness_env_root${PYTHONPATH:+:$PYTHONPATH}" python3 -m harness.infra.secrets \
    --export "${1:-$_harness_env_root/secrets/credentials.txt}")" || return 2
  eval "$out"
}
if _harness_env_load "$@"; then _harness_env_status=0; else _harness_env_status=2; fi
unset -f _harness_env_load
unset _harness_env_root
eval "unset _harness_env_status; return $_harness_env_status"
