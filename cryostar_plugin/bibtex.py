# -*- coding: utf-8 -*-
"""
@article{Li2024cryostar,
  title = {{CryoSTAR}: leveraging structural priors and constraints for cryo-{EM} heterogeneous reconstruction},
  author = {Li, Yilai and Zhou, Yi and Yuan, Jing and Ye, Fei and Gu, Quanquan},
  journal = {Nature Methods},
  year = {2024},
  doi = {10.1038/s41592-024-02486-1},
  url = {https://doi.org/10.1038/s41592-024-02486-1}
}

@article{Li2023cryostarPreprint,
  title = {{CryoSTAR}: leveraging structural prior and constraints for cryo-{EM} heterogeneous reconstruction},
  author = {Li, Yilai and Zhou, Yi and Yuan, Jing and Ye, Fei and Gu, Quanquan},
  journal = {bioRxiv},
  year = {2023},
  note = {Preprint 2023.10.31.564872},
  doi = {10.1101/2023.10.31.564872},
  url = {https://doi.org/10.1101/2023.10.31.564872}
}
"""
