"""Reconstruction under realistic sensing: seeded sensor noise and failures applied identically
to every method (:mod:`.noise`), the shallow decoder (:mod:`.shallow`), a Voronoi-CNN trained
with noise and failure augmentation (:mod:`.cnn`) and gappy POD tuned per condition
(:mod:`.evaluate`)."""
