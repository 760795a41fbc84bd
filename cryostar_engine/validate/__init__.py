"""Up-front validation of user inputs, one module per input kind.

Each check raises :class:`~cryostar_engine.errors.InputError` with one line that names the file
and the row, column or option concerned and says what to do; checks that accept a suspicious
but usable input return notes instead (one line each, shown in reports and logs).

* :mod:`.star` — RELION STAR tables (types, NaN/Inf, duplicated columns, optics, 2-D poses);
* :mod:`.images` — particle stacks (complex modes, NaN/Inf pixels, empty images);
* :mod:`.model` — atomic models (duplicate residue ids, altlocs, several MODELs);
* :mod:`.arrays` — latent / label / index arrays;
* :mod:`.options` — counts given as options and ``--out`` targets.
"""
from .arrays import check_latent_array, load_latent_file
from .options import check_output_file, check_output_folder, check_positive

__all__ = ["check_latent_array", "load_latent_file", "check_output_file", "check_output_folder",
           "check_positive"]
