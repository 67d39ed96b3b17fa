# Option parsing shared by the recipes (sourced by run.sh, in the style of ESPnet's utils/parse_options.sh).
#
# `--some-option VALUE` or `--some-option=VALUE` sets the shell variable `some_option`, which run.sh
# must have declared with its default first; an unknown option is an error. A variable whose
# default is true or false takes `--flag` (true) or `--flag true|false`. Other arguments are kept,
# in order, as the positional parameters. `--help` prints the comment block at the top of $0 (its
# stages and examples), every option of its variable block and of the shared options.sh with its default
# and comment (a recipe that does not source options.sh sets own_options_only=true), and $help_message.

_print_options() {  # the variable block of file $1: name=default  # comment (up to help_message=)
  local line var comment
  while IFS= read -r line; do
    case "$line" in help_message=*) break ;; esac
    [[ "$line" =~ ^([a-z][a-z0-9_]*)=[^#]*(#[[:space:]]*(.*))?$ ]] || continue
    var=${BASH_REMATCH[1]} comment=${BASH_REMATCH[3]}
    printf '  --%-16s %s%s\n' "${var//_/-}" "$comment" "${!var:+ [default: ${!var}]}"
  done < "$1"
}

_print_help() {
  local line
  while IFS= read -r line; do  # the header comment (what, stages, examples), up to the first line of code
    case "$line" in "#!"*) continue ;; "#"*) line=${line#"#"}; echo "${line# }" ;; *) break ;; esac
  done < "$0"
  echo
  echo "Options (--name VALUE; the default is the value now):"
  _print_options "$0"
  [ "${own_options_only:-false}" = true ] || _print_options "$(dirname "${BASH_SOURCE[0]}")/options.sh"
  echo
  echo "${help_message:-Usage: $0 [options]}"
}

_positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help)
      _print_help
      exit 0 ;;
    --*=*)
      _name=${1%%=*}; _value=${1#*=}; shift ;;
    --*)
      _name=$1; shift
      _var=${_name#--}; _var=${_var//-/_}
      if [[ "${!_var-}" =~ ^(true|false)$ ]] && ! [[ "${1-}" =~ ^(true|false)$ ]]; then
        _value=true
      elif [ $# -eq 0 ]; then
        echo "$0: option $_name needs a value" >&2; exit 1
      else
        _value=$1; shift
      fi ;;
    *)
      _positional+=("$1"); shift; continue ;;
  esac
  _var=${_name#--}; _var=${_var//-/_}
  if ! [[ "$_var" =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "${!_var+set}" ]; then
    echo "$0: unknown option $_name (see --help)" >&2; exit 1
  fi
  printf -v "$_var" '%s' "$_value"
done
set -- ${_positional[@]+"${_positional[@]}"}
unset _positional _name _value _var
