"""The paper's own numbers (shared/paper/sidenets.txt), to print beside ours.

Accuracies and ECEs in percent as the paper prints them; (mean, std) over its 5 runs.
"""
from __future__ import annotations

TABLE1_ECE = {  # model: (SideNet ECE, MainNet ECE)
    "resnet152": ((0.30, 0.06), (1.1, 0.18)), "resnet50": ((0.41, 0.10), (0.91, 0.17)),
    "resnet34": ((0.38, 0.08), (1.0, 0.14)), "resnet18": ((0.31, 0.08), (1.0, 0.05)),
}
TABLE2_MAINNET = {  # model: (with SideNet, without SideNet)
    "resnet18": ((92.3, 0.1), (92.1, 0.1)), "resnet34": ((93.2, 0.1), (92.9, 0.2)),
    "resnet50": ((94.0, 0.2), (93.6, 0.3)), "resnet152": ((94.3, 0.1), (93.9, 0.2)),
    "distilbert-base-uncased": ((88.8, 0.1), (89.0, 0.1)), "bert-base-uncased": ((90.6, 0.2), (90.6, 0.3)),
    "bert-large-uncased": ((92.2, 1.2), (92.8, 0.5)),
}
TABLE3_THETAS = (0.2, 0.4, 0.6, 0.8, 0.9)
TABLE3_DISTILBERT = {  # (hidden, after encoder k): cascade accuracy at TABLE3_THETAS
    (768, 1): [(79.6, 0.7), (82.8, 0.7), (85.2, 0.3), (86.9, 0.5), (87.2, 0.4)],
    (32, 1): [(81.4, 0.7), (84.8, 0.6), (86.9, 0.5), (87.9, 0.2), (88.5, 0.5)],
    (768, 2): [(79.7, 0.4), (83.0, 0.8), (85.0, 0.5), (87.1, 0.3), (87.4, 0.4)],
    (32, 2): [(81.0, 0.5), (84.7, 0.1), (86.9, 0.3), (88.1, 0.4), (88.2, 0.2)],
    (768, 3): [(80.1, 0.8), (82.8, 0.6), (85.4, 0.4), (86.5, 0.6), (86.9, 0.2)],
    (32, 3): [(81.4, 0.7), (84.7, 0.5), (86.6, 0.1), (88.2, 0.2), (88.1, 0.5)],
    (768, 5): [(80.1, 0.8), (83.1, 0.6), (85.5, 0.3), (86.8, 0.5), (87.2, 0.3)],
    (32, 5): [(81.5, 0.6), (84.6, 0.4), (86.5, 0.4), (88.1, 0.2), (88.2, 0.1)],
}
TABLE4_ENSEMBLE = {  # model: (MainNet, SideNet, Ensemble)
    "resnet152": ((94.44, 0.11), (88.40, 0.14), (94.52, 0.19)),
    "resnet50": ((94.03, 0.15), (89.14, 0.18), (94.07, 0.12)),
    "resnet34": ((93.21, 0.09), (87.72, 0.29), (93.20, 0.07)),
    "resnet18": ((92.40, 0.10), (86.79, 0.49), (92.44, 0.12)),
}
CLAIMS = {
    "distilbert": "SideNets on DistilBERT reduce its average parameters per input by ~30% for ~0.5 points of "
                  "test accuracy (section 4.2)",
    "frozen": "Training the SideNet on a frozen MainNet costs ~3% (section 3.3)",
    "calibrated": "SideNets on early ResNet layers are calibrated, their MainNets are not (section 4.1, Table 1)",
}
# The stand-in that plays each paper model offline (engine.mainnets / engine.datasets registries).
STAND_INS = {"cifar10": "fashion-mnist", "sst2": "rt-polarity", "distilbert-base-uncased": "minilm-l6",
             "bert-base-uncased": "mpnet-base"}
