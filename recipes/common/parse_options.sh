# Option parsing shared by the recipes (sourced by run.sh, in the style of ESPnet's utils/parse_options.sh).
#
# `--some-option VALUE` or `--some-option=VALUE` sets the shell variable `some_option`, which run.sh
# must have declared with its default first; an unknown option is an error. A variable whose
# default is true or false takes `--flag` (true) or `--flag true|false`. Other arguments are kept,
# in order, as the positional parameters. `--help` prints $help_message.

_positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help)
      echo "${help_message:-see the comments at the top of $0}"
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
