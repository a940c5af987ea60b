//! The permission catalogue (P7) in words: the family each permission is
//! shown under and what it lets a user do, for the people who grant them.
//!
//! Owns: these texts. Must not: change what a permission means (that is
//! [`super::catalogue`] and the rules that check it).

use super::catalogue::Permission;

impl Permission {
    /// The family it is listed under: `Media`, `Annotations`, `Comments`,
    /// `Collections` or `Screens`.
    #[must_use]
    pub const fn family(self) -> &'static str {
        use Permission as P;
        match self {
            P::Download
            | P::Rate
            | P::Feedback
            | P::Favorite
            | P::Share
            | P::UpdateCustomAttributes
            | P::ProcessMedia => "Media",
            P::AnnotationViewOwn
            | P::AnnotationViewAll
            | P::AnnotationEditOwn
            | P::AnnotationEditOthers
            | P::AnnotationDeleteOwn
            | P::AnnotationDeleteOthers => "Annotations",
            P::CommentView
            | P::CommentAdd
            | P::CommentEditOwn
            | P::CommentDeleteOwn
            | P::CommentDeleteOthers => "Comments",
            P::LearningPlans | P::PrivatePlaylists | P::PrivateCollections => "Collections",
            P::ApproveContent | P::Publish | P::ManageDevices => "Screens",
        }
    }

    /// What it lets a user do, in one sentence.
    #[must_use]
    pub const fn description(self) -> &'static str {
        use Permission as P;
        match self {
            P::Download => {
                "Download the original file of media they view, where its settings allow downloads."
            }
            P::Rate => "Rate media they view, where its settings allow rating.",
            P::Feedback => "Report media to its moderators with a reason.",
            P::Favorite => "Keep media among their favourites.",
            P::Share => {
                "Share an expiring playback link, where the media's settings allow sharing."
            }
            P::UpdateCustomAttributes => "Set the values of custom attributes on media.",
            P::ProcessMedia => "Start processing of media, such as a rendition for small screens.",
            P::AnnotationViewOwn => "View and add annotations on media they uploaded.",
            P::AnnotationViewAll => "View and add annotations on every media they view.",
            P::AnnotationEditOwn => "Edit their own annotations.",
            P::AnnotationEditOthers => "Edit annotations written by others.",
            P::AnnotationDeleteOwn => "Delete their own annotations.",
            P::AnnotationDeleteOthers => "Delete annotations written by others.",
            P::CommentView => "Read comments, where the item's settings allow comments.",
            P::CommentAdd => "Write comments, where the item's settings allow comments.",
            P::CommentEditOwn => "Edit their own comments.",
            P::CommentDeleteOwn => "Delete their own comments.",
            P::CommentDeleteOthers => "Delete comments written by others.",
            P::LearningPlans => "Create and manage learning plans.",
            P::PrivatePlaylists => "Create and manage private playlists.",
            P::PrivateCollections => "Create and manage private collections.",
            P::ApproveContent => "Approve or reject content waiting for approval (A6).",
            P::Publish => "Publish content and schedules to screens (U5).",
            P::ManageDevices => "Pair, configure and retire screens.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P7: every catalogue entry has a family and a description.
    #[test]
    fn p7_every_permission_is_described() {
        for p in Permission::ALL {
            assert!(
                !p.family().is_empty() && p.description().ends_with('.'),
                "{p}"
            );
        }
    }
}
