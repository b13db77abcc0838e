"""The simulated cylinder wake: the D2Q9 lattice-Boltzmann solver (:mod:`.lbm`), the cached
vorticity snapshots (:mod:`.cylinder`) and the solver's validation against published Re = 100
drag, lift and Strouhal numbers (:mod:`.solver_check`)."""
