"""AdaIN-VC and its optional parts (VQ bottleneck, adversarial speaker classifier, mel discriminator,
the training voices' identifier)."""

from vc_app.models.adain_vc import AdaINVC, AdaINVCOutput, ContentEncoder, Decoder, SpeakerEncoder
from vc_app.models.blocks import AdaIN, InstanceNorm
from vc_app.models.classifier import SpeakerClassifier, SpeakerIdentifier
from vc_app.models.discriminator import MelDiscriminator
from vc_app.models.vq import VectorQuantizer

__all__ = ["AdaIN", "AdaINVC", "AdaINVCOutput", "ContentEncoder", "Decoder", "InstanceNorm",
           "MelDiscriminator", "SpeakerClassifier", "SpeakerEncoder", "SpeakerIdentifier",
           "VectorQuantizer"]
