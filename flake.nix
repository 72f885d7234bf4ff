{
  description = "Strata: a capability-based service runtime on Deno";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs:
        let
          strata = pkgs.callPackage ./nix/package.nix { src = self; };
          one = name: pkgs.runCommand "strata-${name}" { meta.mainProgram = name; } ''
            mkdir -p $out/bin && ln -s ${strata}/bin/${name} $out/bin/${name}
          '';
        in
        {
          default = strata;
          # The supervisor runs the binaries next to it, so it is the whole set.
          supervisor = strata;
          identity = one "identity";
          fs = one "fs";
          registry = one "registry";
          strata-ctl = one "strata-ctl";
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell { packages = [ pkgs.deno pkgs.nodejs ]; };
      });

      nixosModules.strata = import ./nix/module.nix { inherit self; };
      nixosModules.default = self.nixosModules.strata;
    };
}
