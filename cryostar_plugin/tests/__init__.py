"""Tests of the CryoSTAR Scipion plugin (unittest classes; pytest runs them too).

* ``test_plugin``      discovery through the entry point, bibtex, protocols.conf, engine command.
* ``test_convert``     SetOfParticles → RELION star for the engine, checked against the original.
* ``test_boundary``    no engine/torch import; the chain with untouched forms in a Scipion process
  that cannot import them; its config.json equal to the command line's defaults (48/64 px).
* ``test_forms``       the forms carry the engine's --settings-json (defaults, choices, help).
* ``test_protocols``   'check inputs' end to end; engine errors reach the protocol.
* ``test_workflow``    the whole chain on one shared project (``shared_project``): import →
  train atom generator (stopped, then continued: resumes) → analyze → train density → subset;
  z row for row, models/volumes in the user's frame, subsets keep every attribute.
* ``test_validation``  every ``_validate`` error from one bad input; engine error line in the log.
* ``test_viewers``     viewer figures and ChimeraX scripts written headless; low-pass wizard.
* ``test_validation_viewer``  the density run's model-map validation (real engine): its step,
  summary verdict, and the viewer's table, figures and ChimeraX button built from its report.
* ``test_train_atom``  form → engine command line; z → particle mapping.

Run them with any of::

    pytest -q cryostar_plugin/tests                    # the repository's conftest.py sets a
                                                       # throw-away headless Scipion environment
    scipion test cryostar_plugin.tests.test_workflow   # inside a Scipion installation
    python -m pyworkflow.apps.pw_run_tests cryostar_plugin.tests.test_workflow

The last one needs the Scipion variables in the environment *before* Python starts
(pyworkflow reads them at import), e.g. ``SCIPION_DOMAIN=pwem``, ``SCIPION_HOSTS=<hosts.conf>``
(with a ``[localhost]`` section), ``SCIPION_USER_DATA=<scratch folder>`` and
``SCIPION_PYTHON=$(which python)``.  Test data come from the repository's ``data/`` folder.
"""
