"""Classical sparse reconstruction and placement: POD, gappy POD (:mod:`.pod`) and QR-pivoted
or random layouts (:mod:`.placement`), the baselines every Voronoi-CNN result stands beside."""
