# Strata for Nix, in either form (see docs/operations.md):
#   form = "installed": `deno task install` into $out: the program, a read-only
#     DENO_DIR with the locked npm packages, type-checked, and launchers
#     (bin/strata-supervisor, strata-ctl, ...) that `deno run` each program with
#     exactly its flags. Runs on nixpkgs' deno; needs no denort.
#   form = "compiled": `deno task compile` into $out/bin (supervisor, registry,
#     identity, fs, strata-ctl), built on nixpkgs' `denort` package (nixpkgs'
#     `deno` deletes its bin/denort; the runtime is a package of its own).
# The layout is a build parameter in both forms, so the NixOS module builds the
# package it needs.
#
# The npm packages are exactly the tarballs deno.lock names, each fetched with
# the lock's own sha512 integrity: nothing is hashed that the registry can change
# (no packuments, no dist-tags), so there is no dependency hash to keep up to date.
{
  lib,
  stdenvNoCC,
  fetchurl,
  deno,
  # nixpkgs' denort (same version as deno); only the compiled form uses it.
  denort ? null,
  src,
  form ? "installed",
  runtimeDir ? "/run/strata",
  stateDir ? "/var/lib/strata",
  nodeId ? "local",
  fsRoots ? [ ],
  groupAccess ? false,
  # Cluster mode and tcp:// (the NixOS module's services.strata.cluster):
  # { "etcd-endpoints" = "http://10.0.0.1:2379"; ... }, each passed as --name=value.
  settings ? { },
}:
assert lib.assertMsg (form == "installed" || form == "compiled")
  "strata: form must be \"installed\" or \"compiled\", not ${form}";
assert lib.assertMsg (form != "compiled" || denort != null)
  "strata: the compiled form needs nixpkgs' denort package (pass denort = pkgs.denort)";
let
  version = (builtins.fromJSON (builtins.readFile (src + "/nix/version.json"))).version;
  lock = builtins.fromJSON (builtins.readFile (src + "/deno.lock"));

  # "@scope/name@1.2.3" -> { name = "@scope/name"; version = "1.2.3"; }
  splitKey = key:
    let m = builtins.match "(@?[^@]+)@([^@_]+)" key;
    in
    if m == null then throw "strata: deno.lock npm entry ${key} is not name@version (peer-dependency suffixes are not supported)"
    else { name = builtins.elemAt m 0; version = builtins.elemAt m 1; };

  npmPackages = builtins.map (key:
    let
      p = splitKey key;
      entry = lock.npm.${key};
    in
    p // {
      tarball = fetchurl {
        url = "https://registry.npmjs.org/${p.name}/-/${baseNameOf p.name}-${p.version}.tgz";
        hash = entry.integrity;
      };
    }) (builtins.attrNames (lock.npm or { }));

  # A DENO_DIR holding the locked packages, laid out as deno's own npm cache.
  deps =
    assert lib.assertMsg (!(lock ? jsr) && !(lock ? remote))
      "strata: deno.lock has jsr or remote entries; only npm packages are fetched here";
    stdenvNoCC.mkDerivation {
      pname = "strata-deno-deps";
      inherit version;
      dontUnpack = true;
      installPhase = lib.concatStringsSep "\n" (builtins.map (p: ''
        mkdir -p "$out/npm/registry.npmjs.org/${p.name}/${p.version}"
        tar -xzf ${p.tarball} -C "$out/npm/registry.npmjs.org/${p.name}/${p.version}" --strip-components=1
      '') npmPackages);
    };

  layoutFlags = lib.concatStringsSep " " ([
    "--runtime-dir=${runtimeDir}"
    "--state-dir=${stateDir}"
    "--node-id=${nodeId}"
    "--fs-roots=${lib.concatStringsSep ":" fsRoots}"
  ] ++ lib.optional groupAccess "--group-access"
    ++ builtins.map (k: "--${k}=${settings.${k}}") (builtins.attrNames settings));
in
stdenvNoCC.mkDerivation {
  pname = "strata";
  inherit version src;
  nativeBuildInputs = [ deno ];
  dontConfigure = true;
  buildPhase = ''
    export DENO_DIR=$TMPDIR/deno DENO_NO_UPDATE_CHECK=1 HOME=$TMPDIR
    cp -r ${deps} $DENO_DIR && chmod -R u+w $DENO_DIR
  '' + (if form == "compiled" then ''
    export DENORT_BIN=${denort}/bin/denort
    deno run --cached-only --allow-run --allow-env --allow-read scripts/compile.ts \
      ${layoutFlags} --out=$out/bin --bin-dir=$out/bin
  '' else ''
    deno run --cached-only --allow-run --allow-env --allow-read --allow-write scripts/install.ts \
      ${layoutFlags} --prefix=$out --deps=$DENO_DIR --deno=${deno}/bin/deno
  '');
  installPhase = ''
    mkdir -p $out/share/doc/strata
    cp -r README.md docs api/protocol.md $out/share/doc/strata/
  '';
  # deno compile appends the program to the runtime; stripping would cut it off.
  dontStrip = true;
  passthru = { inherit deps form npmPackages; };
  meta = {
    description = "Capability-based service runtime on Deno: supervisor, identity, fs, registry, strata-ctl";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = if form == "compiled" then "supervisor" else "strata-supervisor";
  };
}
