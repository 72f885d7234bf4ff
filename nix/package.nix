# Strata's compiled binaries: `deno compile` of each program with its
# permission flags and layout baked in (see scripts/compile.ts). The layout is
# a build parameter, so the NixOS module builds the package it needs.
#
# `deno compile` needs the npm packages (fetched into a fixed-output
# derivation, pinned by deno.lock) and the denort runtime (from nixpkgs' deno).
{
  lib,
  stdenvNoCC,
  deno,
  src,
  runtimeDir ? "/run/strata",
  stateDir ? "/var/lib/strata",
  nodeId ? "local",
  fsRoots ? [ ],
  groupAccess ? false,
  # The hash of the npm dependency cache. After changing deno.lock, build once
  # with lib.fakeHash; Nix prints the hash to put here.
  depsHash ? lib.fakeHash,
  # The denort runtime that matches `deno`. nixpkgs' deno ships it; point this
  # elsewhere if yours does not.
  denort ? "${deno}/bin/denort",
}:
let
  version = (builtins.fromJSON (builtins.readFile (src + "/nix/version.json"))).version;
  entries = "src/supervisor/main.ts src/registry/main.ts src/identity/main.ts src/fs/main.ts src/ctl/main.ts";

  deps = stdenvNoCC.mkDerivation {
    pname = "strata-deno-deps";
    inherit version src;
    nativeBuildInputs = [ deno ];
    dontConfigure = true;
    buildPhase = ''
      export DENO_DIR=$out DENO_NO_UPDATE_CHECK=1 HOME=$TMPDIR
      deno cache --frozen --lock=deno.lock ${entries}
      # Drop caches that are not needed to compile and are not reproducible.
      rm -rf $out/*_cache_* $out/*.sqlite* $out/gen
    '';
    dontInstall = true;
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
    outputHash = depsHash;
  };
in
stdenvNoCC.mkDerivation {
  pname = "strata";
  inherit version src;
  nativeBuildInputs = [ deno ];
  dontConfigure = true;
  buildPhase = ''
    export DENO_DIR=$TMPDIR/deno DENO_NO_UPDATE_CHECK=1 HOME=$TMPDIR
    cp -r ${deps} $DENO_DIR && chmod -R u+w $DENO_DIR
    export DENORT_BIN=${denort}
    deno run --cached-only --allow-run --allow-env --allow-read scripts/compile.ts \
      --runtime-dir=${runtimeDir} --state-dir=${stateDir} --node-id=${nodeId} \
      --fs-roots=${lib.concatStringsSep ":" fsRoots} \
      ${lib.optionalString groupAccess "--group-access"} \
      --out=$out/bin --bin-dir=$out/bin
  '';
  installPhase = ''
    mkdir -p $out/share/doc/strata $out/lib/systemd/system
    cp README.md api/protocol.md $out/share/doc/strata/
  '';
  # deno compile appends the program to the runtime; stripping would cut it off.
  dontStrip = true;
  passthru = { inherit deps; };
  meta = {
    description = "Capability-based service runtime on Deno: supervisor, identity, fs, registry, strata-ctl";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "supervisor";
  };
}
