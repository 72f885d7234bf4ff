/**
 * `strata-ctl completion bash|zsh|fish`: a completion script generated from
 * the command table, offering commands, subcommands, options, service names
 * for NAME and --service, local files for DEST, the raw methods, and what
 * only the node knows (remote paths, cap_ids) by asking `strata-ctl __complete`.
 * @module
 */

import { SERVICES } from "../policy/rights.ts";
import { CHILD_SERVICES } from "../runtime/config.ts";
import type { MethodInfo } from "./methods.ts";
import {
  type ArgSpec,
  type Command,
  type Completion,
  type Entry,
  GLOBAL_OPTIONS,
  isGroup,
  type OptionSpec,
} from "./spec.ts";

/** The shells strata-ctl writes completion for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** A shell strata-ctl writes completion for. */
export type Shell = typeof SHELLS[number];

/** Options the launcher passes first; they take a value but are never offered. */
const LAUNCHER_OPTIONS = ["node-id", "fs-roots"];

/** One command as completion sees it: its words, options and arguments. */
interface Leaf {
  words: string[];
  options: readonly OptionSpec[];
  args: readonly ArgSpec[];
}

/** The command table flattened for the generators. */
interface Model {
  /** First words: commands, then raw methods, each with a summary. */
  top: [string, string][];
  groups: { name: string; subs: [string, string][] }[];
  leaves: Leaf[];
  /** Every option word that takes a value (its value is not a positional). */
  valueWords: string[];
  entryNames: string[];
}

function leafOf(words: string[], c: Command): Leaf {
  return { words, options: c.options, args: c.args };
}

function buildModel(entries: readonly Entry[], methods: readonly MethodInfo[]): Model {
  const leaves: Leaf[] = [];
  const groups: Model["groups"] = [];
  for (const e of entries) {
    if (isGroup(e)) {
      groups.push({ name: e.name, subs: e.commands.map((c) => [c.name, c.summary]) });
      for (const c of e.commands) leaves.push(leafOf([e.name, c.name], c));
    } else leaves.push(leafOf([e.name], e));
  }
  const valueWords = new Set<string>(["-token"]);
  for (const o of [...GLOBAL_OPTIONS, ...leaves.flatMap((l) => l.options)]) {
    if (o.value) valueWords.add(`--${o.name}`);
  }
  for (const name of LAUNCHER_OPTIONS) valueWords.add(`--${name}`);
  return {
    top: [
      ...entries.map((e): [string, string] => [e.name, e.summary]),
      ...methods.map((m): [string, string] => [m.method, `raw: ${m.summary}`]),
    ],
    groups,
    leaves,
    valueWords: [...valueWords],
    entryNames: entries.map((e) => e.name),
  };
}

/** The fixed words a completion offers, or undefined for files or nothing. */
function wordsOf(c: Completion | undefined, m: Model): string[] | undefined {
  if (c === undefined || c === "none" || c === "files" || dynamicKind(c)) return undefined;
  if (c === "services") return [...SERVICES];
  if (c === "supervised") return [...CHILD_SERVICES];
  if (c === "commands") return m.entryNames;
  return [...c];
}

/** The kind `strata-ctl __complete` is asked for, for words only the node knows. */
function dynamicKind(c: Completion | undefined): "paths" | "caps" | undefined {
  return c === "remote" ? "paths" : c === "caps" ? "caps" : undefined;
}

/** Option words of a command, global ones first: "--json", "-h", "--force", "-f". */
function optionWords(options: readonly OptionSpec[]): string[] {
  const out: string[] = [];
  for (const o of options) {
    out.push(`--${o.name}`);
    if (o.short) out.push(`-${o.short}`);
  }
  return out;
}

/** Single-quoted for any of the three shells. */
function q(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The argument spec at position `i` (the last one repeats when variadic). */
function argAt(args: readonly ArgSpec[], i: number): ArgSpec | undefined {
  if (i < args.length) return args[i];
  const last = args.at(-1);
  return last?.variadic ? last : undefined;
}

/** Options whose values complete to something, across every command and the globals. */
function valueCompletions(m: Model): { words: string[]; complete: Completion }[] {
  const byName = new Map<string, Completion>();
  for (const o of [...GLOBAL_OPTIONS, ...m.leaves.flatMap((l) => l.options)]) {
    if (o.value && o.complete && o.complete !== "none") byName.set(`--${o.name}`, o.complete);
  }
  return [...byName].map(([word, complete]) => ({ words: [word], complete }));
}

function bashScript(m: Model): string {
  const groupNames = m.groups.map((g) => g.name).join("|");
  const optionCases = m.leaves.filter((l) => l.options.length > 0).map((l) =>
    `    ${q(l.words.join(" "))}) opts+=" ${optionWords(l.options).join(" ")}" ;;`
  );
  const valueCases = valueCompletions(m).map(({ words, complete }) => {
    const fixed = wordsOf(complete, m);
    const reply = fixed
      ? `COMPREPLY=($(compgen -W ${q(fixed.join(" "))} -- "$cur"))`
      : `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))`;
    return `    ${words.join("|")}) ${reply}; return ;;`;
  });
  const subCases = m.groups.map((g) =>
    `      ${g.name}) COMPREPLY=($(compgen -W ${
      q(g.subs.map(([s]) => s).join(" "))
    } -- "$cur")); return ;;`
  );
  const argCases: string[] = [];
  for (const l of m.leaves) {
    const lines: string[] = [];
    const count = l.args.some((a) => a.variadic) ? l.args.length + 8 : l.args.length;
    for (let i = 0; i < count; i++) {
      const a = argAt(l.args, i);
      if (!a?.complete || a.complete === "none") continue;
      const fixed = wordsOf(a.complete, m);
      const asked = dynamicKind(a.complete);
      const reply = asked
        ? `_strata_ctl_ask ${asked}`
        : fixed
        ? `COMPREPLY=($(compgen -W ${q(fixed.join(" "))} -- "$cur"))`
        : `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))`;
      lines.push(`        ${i}) ${reply} ;;`);
    }
    if (lines.length === 0) continue;
    argCases.push(
      `    ${q(l.words.join(" "))})`,
      `      case $((n - ${l.words.length})) in`,
      ...lines,
      "      esac ;;",
    );
  }
  return `# bash completion for strata-ctl, generated by \`strata-ctl completion bash\`.
# Install: strata-ctl completion bash > ~/.local/share/bash-completion/completions/strata-ctl
# or add to ~/.bashrc: source <(strata-ctl completion bash)

# Remote paths or cap_ids: asked of the node by strata-ctl itself, with the
# token and folders given on the command line (else $STRATA_TOKEN or the operator token).
_strata_ctl_ask() {
  local -a g=()
  local i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    case $w in
      -token|--token|--runtime-dir|--state-dir)
        if [[ \${COMP_WORDS[i+1]:-} == "=" ]]; then
          g+=("$w" "\${COMP_WORDS[i+2]:-}"); ((i += 2))
        else
          g+=("$w" "\${COMP_WORDS[i+1]:-}"); ((i++))
        fi ;;
    esac
  done
  local IFS=$'\n'
  COMPREPLY=($("\${COMP_WORDS[0]}" "\${g[@]}" --timeout 2000 __complete "$1" "$cur" 2>/dev/null))
  # A folder: no space after it, so the next TAB goes on into it.
  if [[ $1 == paths && \${#COMPREPLY[@]} -eq 1 && \${COMPREPLY[0]} == */ ]]; then
    compopt -o nospace 2>/dev/null
  fi
}

_strata_ctl() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local value_opts=${q(` ${m.valueWords.join(" ")} `)}
  local -a pos=()
  local i w
  # The positionals before the word being completed (option values skipped).
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ \${COMP_WORDS[i+1]:-} == "=" ]]; then ((i += 2)); continue; fi
    if [[ $value_opts == *" $w "* ]]; then ((i++)); continue; fi
    [[ $w == -* ]] && continue
    pos+=("$w")
  done
  [[ $prev == "=" && $COMP_CWORD -ge 2 ]] && prev=\${COMP_WORDS[COMP_CWORD-2]}
  [[ $cur == "=" ]] && cur=""
  local n=\${#pos[@]} key=\${pos[0]:-}
  case $key in
    ${groupNames}) ((n >= 2)) && key="$key \${pos[1]}" ;;
  esac
  case $prev in
${valueCases.join("\n")}
  esac
  if [[ $value_opts == *" $prev "* ]]; then COMPREPLY=(); return; fi
  if [[ $cur == -* ]]; then
    local opts=${q(optionWords(GLOBAL_OPTIONS).join(" "))}
    case $key in
${optionCases.join("\n")}
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  if ((n == 0)); then
    COMPREPLY=($(compgen -W ${q(m.top.map(([w]) => w).join(" "))} -- "$cur"))
    return
  fi
  if ((n == 1)); then
    case $key in
${subCases.join("\n")}
    esac
  fi
  case $key in
${argCases.join("\n")}
  esac
}
complete -F _strata_ctl strata-ctl
`;
}

function zshScript(m: Model): string {
  const groupNames = m.groups.map((g) => g.name).join("|");
  const describe = (pairs: [string, string][]) =>
    pairs.map(([w, d]) => q(`${w.replaceAll(":", "\\:")}:${d}`)).join(" ");
  const valueCases = valueCompletions(m).map(({ words, complete }) => {
    const fixed = wordsOf(complete, m);
    const reply = fixed ? `compadd -- ${fixed.map(q).join(" ")}` : "_files";
    return `    (${words.join("|")}) ${reply}; return ;;`;
  });
  const optionCases = m.leaves.filter((l) => l.options.length > 0).map((l) =>
    `    (${q(l.words.join(" "))}) opts+=(${optionWords(l.options).join(" ")}) ;;`
  );
  const subCases = m.groups.map((g) => `      (${g.name}) subs=(${describe(g.subs)}) ;;`);
  const argCases: string[] = [];
  for (const l of m.leaves) {
    const lines: string[] = [];
    const count = l.args.some((a) => a.variadic) ? l.args.length + 8 : l.args.length;
    for (let i = 0; i < count; i++) {
      const a = argAt(l.args, i);
      if (!a?.complete || a.complete === "none") continue;
      const fixed = wordsOf(a.complete, m);
      const asked = dynamicKind(a.complete);
      const reply = asked
        ? `_strata_ctl_ask ${asked}`
        : fixed
        ? `compadd -- ${fixed.map(q).join(" ")}`
        : "_files";
      lines.push(`        (${i}) ${reply} ;;`);
    }
    if (lines.length === 0) continue;
    argCases.push(
      `    (${q(l.words.join(" "))})`,
      `      case $((n - ${l.words.length})) in`,
      ...lines,
      "      esac ;;",
    );
  }
  return `#compdef strata-ctl
# zsh completion for strata-ctl, generated by \`strata-ctl completion zsh\`.
# Install: strata-ctl completion zsh > "\${fpath[1]}/_strata-ctl"   (then restart zsh)
# or add to ~/.zshrc after compinit: source <(strata-ctl completion zsh)

# Remote paths or cap_ids, asked of the node with the token and folders on the line.
_strata_ctl_ask() {
  local -a g offers
  local i
  for ((i = 2; i < CURRENT; i++)); do
    case \${words[i]} in
      (-token|--token|--runtime-dir|--state-dir) g+=(\${words[i]} \${words[i+1]}); ((i++)) ;;
      (--token=*|--runtime-dir=*|--state-dir=*) g+=(\${words[i]}) ;;
    esac
  done
  offers=(\${(f)"$(\${words[1]} $g --timeout 2000 __complete $1 \${words[CURRENT]} 2>/dev/null)"})
  compadd -Q -S '' -- \${(M)offers:#*/}
  compadd -Q -- \${offers:#*/}
}

_strata_ctl() {
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]}
  local -a value_opts=(${m.valueWords.join(" ")})
  local -a pos subs opts
  local i w
  for ((i = 2; i < CURRENT; i++)); do
    w=\${words[i]}
    if (( \${value_opts[(Ie)$w]} )); then ((i++)); continue; fi
    [[ $w == -* ]] && continue
    pos+=("$w")
  done
  local n=\${#pos} key=\${pos[1]:-}
  case $key in
    (${groupNames}) ((n >= 2)) && key="$key \${pos[2]}" ;;
  esac
  case $prev in
${valueCases.join("\n")}
  esac
  (( \${value_opts[(Ie)$prev]} )) && return
  if [[ $cur == -* ]]; then
    opts=(${optionWords(GLOBAL_OPTIONS).join(" ")})
    case $key in
${optionCases.join("\n")}
    esac
    compadd -- $opts
    return
  fi
  if ((n == 0)); then
    subs=(${describe(m.top)})
    _describe -t commands 'strata-ctl command' subs
    return
  fi
  if ((n == 1)); then
    case $key in
${subCases.join("\n")}
    esac
    if (( \${#subs} )); then
      _describe -t commands "strata-ctl $key command" subs
      return
    fi
  fi
  case $key in
${argCases.join("\n")}
  esac
}
if [[ $funcstack[1] == _strata-ctl ]]; then
  _strata_ctl "$@"
else
  compdef _strata_ctl strata-ctl
fi
`;
}

function fishScript(m: Model): string {
  const lines: string[] = [];
  const c = (cond: string, rest: string) =>
    lines.push(`complete -c strata-ctl -n ${q(cond)} ${rest}`);
  for (const [w, d] of m.top) c("__strata_ctl_arg 0", `-a ${q(w)} -d ${q(d)}`);
  for (const g of m.groups) {
    for (const [w, d] of g.subs) c(`__strata_ctl_arg 0 ${g.name}`, `-a ${q(w)} -d ${q(d)}`);
  }
  for (const l of m.leaves) {
    const at = l.words.join(" ");
    const count = l.args.some((a) => a.variadic) ? l.args.length + 8 : l.args.length;
    for (let i = 0; i < count; i++) {
      const a = argAt(l.args, i);
      if (!a?.complete || a.complete === "none") continue;
      const fixed = wordsOf(a.complete, m);
      const asked = dynamicKind(a.complete);
      c(
        `__strata_ctl_arg ${i} ${at}`,
        asked
          ? `-a ${q(`(__strata_ctl_ask ${asked})`)}`
          : fixed
          ? `-a ${q(fixed.join(" "))}`
          : "-F",
      );
    }
    for (const o of l.options) {
      const fixed = wordsOf(o.complete, m);
      const value = o.value ? (fixed ? ` -r -a ${q(fixed.join(" "))}` : " -r") : "";
      const short = o.short ? ` -s ${o.short}` : "";
      c(`__strata_ctl_in ${at}`, `-l ${o.name}${short}${value} -d ${q(o.summary)}`);
    }
  }
  for (const o of GLOBAL_OPTIONS) {
    const value = o.value ? (o.complete === "files" ? " -r -F" : " -r") : "";
    const short = o.short ? ` -s ${o.short}` : "";
    const old = o.name === "token" ? " -o token" : "";
    lines.push(`complete -c strata-ctl -l ${o.name}${short}${old}${value} -d ${q(o.summary)}`);
  }
  return `# fish completion for strata-ctl, generated by \`strata-ctl completion fish\`.
# Install: strata-ctl completion fish > ~/.config/fish/completions/strata-ctl.fish

# The positionals typed so far, one per line (option values skipped).
function __strata_ctl_pos
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l skip 0
    for t in $tokens
        if test $skip -eq 1
            set skip 0
        else if string match -qr -- ${q(`^(${m.valueWords.join("|")})$`)} $t
            set skip 1
        else if not string match -q -- '-*' $t
            echo $t
        end
    end
end

# True when the positionals start with the given words (the command so far).
function __strata_ctl_in
    set -l pos (__strata_ctl_pos)
    test (count $pos) -ge (count $argv); or return 1
    set -l i 1
    for w in $argv
        test "$pos[$i]" = "$w"; or return 1
        set i (math $i + 1)
    end
end

# True when completing argument N (from 0) of the command named by the other words.
function __strata_ctl_arg
    set -l n $argv[1]
    set -e argv[1]
    __strata_ctl_in $argv; or return 1
    test (count (__strata_ctl_pos)) -eq (math (count $argv) + $n)
end

# Remote paths or cap_ids, asked of the node with the token and folders on the line.
function __strata_ctl_ask
    set -l tokens (commandline -opc)
    set -l g
    set -l n (count $tokens)
    for i in (seq 2 $n)
        switch $tokens[$i]
            case -token --token --runtime-dir --state-dir
                if test $i -lt $n
                    set g $g $tokens[$i] $tokens[(math $i + 1)]
                end
            case '--token=*' '--runtime-dir=*' '--state-dir=*'
                set g $g $tokens[$i]
        end
    end
    $tokens[1] $g --timeout 2000 __complete $argv[1] (commandline -ct) 2>/dev/null
end

complete -c strata-ctl -f
${lines.join("\n")}
`;
}

/** What a completion script covers: the command table and the raw methods. */
export interface CompletionOptions {
  entries: readonly Entry[];
  methods: readonly MethodInfo[];
}

/** The completion script for `shell`, covering the commands and the raw methods. */
export function completionScript(shell: Shell, options: CompletionOptions): string {
  const m = buildModel(options.entries, options.methods);
  if (shell === "bash") return bashScript(m);
  if (shell === "zsh") return zshScript(m);
  return fishScript(m);
}
