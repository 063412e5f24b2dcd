"""hf_txray neuron viewer on a Hugging Face Space: the app ships in hf_txray (``hf_txray.viewer.app``); see README.md.

``hf_txray.viewer.deploy_space`` uploads this file next to a copy of the package, which is imported from here.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if (HERE / "hf_txray" / "__init__.py").is_file():  # on a Space: the copy uploaded by deploy_space
    sys.path.insert(0, str(HERE))

from hf_txray.viewer.app import build_demo  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
